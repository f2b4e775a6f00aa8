"""The benchmark tooling (`make bench`), apart from the library: a lecture-style loop, the framework and the compute bound, each timed in its own process."""
