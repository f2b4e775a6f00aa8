"""A real PostgreSQL server for the search tests (benchmarks.postgres): one per test process,
started on first use and stopped at the end; each test gets a database of its own.

Without PostgreSQL's binaries the tests that need them fail, saying how to install them: a
scale-out claim left untested must not pass as a skip.
"""

import itertools

import pytest

from benchmarks.postgres import PostgresServer

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    try:
        server = PostgresServer(fsync=False)  # the tests check behaviour, not durability
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.remove()


@pytest.fixture
def postgres(postgres_server) -> str:
    """The URL of a new, empty database on the tests' server."""
    return postgres_server.database(f"test{next(_databases)}")
