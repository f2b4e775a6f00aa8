"""The docs cannot drift: README.md and docs/*.md parse as Markdown with every code fence closed on a
line of its own, every relative link and #anchor resolves, every repository path they name exists,
the defaults they state are those of the composed config, the commands table matches the command
modules (and the console scripts, once pyproject.toml declares them), and the README's quick start and
Python example run, on the tests' fake MNIST."""

import inspect
import re
import shlex
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from omegaconf import DictConfig, OmegaConf

from autoencoder import CONFIG_DIR, REPO_DIR
from autoencoder.config.validation import RULES, Setting, settings, validate
from autoencoder.data.dataset import DATA_ENV
from autoencoder.evaluation import classifier, evaluate, sampling
from autoencoder.utils.cli import load_config
from autoencoder.workflows import anomaly, study
from tests.conftest import FAST, run_module

README = REPO_DIR / "README.md"
PAGES = [README, *sorted((REPO_DIR / "docs").glob("*.md"))]
MARKDOWN = MarkdownIt("commonmark").enable("table")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
HEADLINE = "python -m autoencoder.train model.latent_dim=2 noise=0.3"


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO_DIR))


pages = pytest.mark.parametrize("page", PAGES, ids=page_id)


@cache
def tokens(page: Path) -> tuple[Token, ...]:
    return tuple(MARKDOWN.parse(page.read_text(encoding="utf-8")))


def inline_text(inline: Token) -> str:
    """A heading's text as GitHub reads it: text and code spans, without the Markdown."""
    return "".join(child.content for child in inline.children or () if child.type in ("text", "code_inline"))


def slug(text: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return "".join(c for c in text.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def headings(page: Path) -> list[tuple[int, str]]:
    """(level, text) of every heading, in order."""
    toks = tokens(page)
    return [(int(t.tag[1]), inline_text(toks[i + 1])) for i, t in enumerate(toks) if t.type == "heading_open"]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings; a repeated one gets -1, -2, ..."""
    seen: Counter = Counter()
    result = set()
    for _, text in headings(page):
        base = slug(text)
        result.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return result


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every link and image."""
    found = []
    for token in tokens(page):
        for child in token.children or ():
            if child.type == "link_open":
                found.append((token.map[0] + 1, child.attrs["href"]))
            elif child.type == "image":
                found.append((token.map[0] + 1, child.attrs["src"]))
    return found


def section(page: Path, title: str) -> str:
    """The raw text under the heading `title` up to the next heading of the same or a higher level."""
    lines = page.read_text(encoding="utf-8").splitlines()
    spans = [(t.map[0], int(t.tag[1]), inline_text(tokens(page)[i + 1])) for i, t in enumerate(tokens(page)) if t.type == "heading_open"]
    for n, (start, level, text) in enumerate(spans):
        if text == title:
            end = next((s for s, lv, _ in spans[n + 1 :] if lv <= level), len(lines))
            return "\n".join(lines[start + 1 : end])
    raise AssertionError(f"{page_id(page)} has no heading {title!r}")


def fenced(text: str, language: str) -> list[str]:
    """The contents of the ```<language> blocks in `text`."""
    return [t.content for t in MARKDOWN.parse(text) if t.type == "fence" and t.info.strip() == language]


# (a) Markdown: fences, tokens, tables of contents


@pages
def test_fences_open_and_close_on_lines_of_their_own(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    marks = [(n, m) for n, line in enumerate(lines) if (m := FENCE.match(line))]
    assert len(marks) % 2 == 0, f"{page_id(page)}: an odd number of fence lines ({len(marks)}): one is not closed"
    for (_, opening), (n, closing) in zip(marks[::2], marks[1::2], strict=True):
        assert closing.group(1) == opening.group(1) and not closing.group(2).strip(), f"{page_id(page)}:{n + 1}: text after a closing fence: {lines[n]!r}"
    # The parser agrees: each fence it sees runs from an opening line to the closing line paired with it.
    parsed = [(t.map[0], t.map[1] - 1) for t in tokens(page) if t.type in ("fence", "code_block")]
    assert parsed == [(a, b) for (a, _), (b, _) in zip(marks[::2], marks[1::2], strict=True)], f"{page_id(page)}: fences parse differently from their lines"


@pages
def test_page_parses_into_a_titled_document(page):
    toks = tokens(page)
    assert toks and toks[0].type == "heading_open" and toks[0].tag == "h1", f"{page_id(page)} does not start with a # title"
    assert sum(t.type == "heading_open" and t.tag == "h1" for t in toks) == 1, f"{page_id(page)} has more than one # title"
    stray = [t.map[0] + 1 for t in toks if t.type == "inline" and "```" in t.content]
    assert not stray, f"{page_id(page)}: a fence marker inside running text on lines {stray}"
    assert sum(t.nesting for t in toks) == 0, f"{page_id(page)}: unbalanced blocks"


@pages
def test_page_starts_with_a_table_of_contents(page):
    """The first list of the page links to each of its ## headings, in order."""
    toks = tokens(page)
    start = next(i for i, t in enumerate(toks) if t.type == "bullet_list_open")
    end = next(i for i in range(start, len(toks)) if toks[i].type == "bullet_list_close")
    assert not any(t.type == "heading_open" and t.tag == "h2" for t in toks[:start]), f"{page_id(page)}: a ## heading before the contents"
    toc = [c.attrs["href"] for t in toks[start:end] for c in t.children or () if c.type == "link_open"]
    assert toc == [f"#{slug(text)}" for level, text in headings(page) if level == 2]


# (b) Links, anchors and paths


def test_slugs_are_githubs():
    assert slug("Fashion-MNIST: one-class anomaly detection") == "fashion-mnist-one-class-anomaly-detection"
    assert slug("The VAE's likelihood") == "the-vaes-likelihood"
    assert slug("With and without pruning, on MNIST") == "with-and-without-pruning-on-mnist"
    assert slug("headline (model.latent_dim=2 noise=0.3)") == "headline-modellatent_dim2-noise03"


@pages
def test_relative_links_and_anchors_resolve(page):
    broken = []
    for line, target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{page_id(page)}:{line}: {target} (no such file)")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{page_id(page)}:{line}: {target} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


REPO_PATH = re.compile(r"^(?:autoencoder|benchmarks|conf|docs|hydra_plugins|tests)/[\w./-]*$|^\.ci/run$|^Makefile$|^pyproject\.toml$")


@pages
def test_repository_paths_named_exist(page):
    named = {c.content for t in tokens(page) for c in t.children or () if c.type == "code_inline" and REPO_PATH.match(c.content)}
    missing = sorted(p for p in named if not (REPO_DIR / p).exists())
    assert not missing, f"{page_id(page)} names paths that do not exist: {missing}"


# (c) Defaults the docs state, against the composed config

GROUP_ROW = re.compile(r"^\| `([a-z_/]+)` \| (.+?) \| .* \|$")
# `key` (value); not a file name (`manifold.png` (images ...)) or an option (`conv` (default)).
KEY_VALUE = re.compile(r"`([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)(?<!\.png)(?<!\.json)(?<!\.npy)(?<!\.ckpt)(?<!\.md)` \((?!\[[A-Za-z])(\[[^\]]*\]|[^)]*)\)")
BASES = {"trainer": {"default"}}  # files that the group's options extend, not options of their own


# Each command's rules: validating its config fills in what its nodes leave to their classes' defaults.
COMMAND_RULES = {
    "config": RULES,
    "evaluate": evaluate.RULES,
    "sample": sampling.RULES,
    "anomaly": anomaly.ANOMALY_RULES,
    "study": study.STUDY_RULES,
    "classifier": classifier.RULES,
}


@cache
def composed(config: str, *overrides: str) -> DictConfig:
    """A command's config as its run has it: composed, then completed with the defaults."""
    cfg = load_config(config, list(overrides), return_hydra_config=True)
    if config in COMMAND_RULES:
        validate(cfg, COMMAND_RULES[config])
    return cfg


def value(text: str) -> object:
    """A value as the docs write it, `(64)`, `(null: all)`, `(1e-2, the peak ...)`, `([32, 64])`."""
    text = text.strip()
    if text.startswith("["):
        return yaml.safe_load(text[: text.index("]") + 1])
    word = re.split(r"[,;:\s]", text, maxsplit=1)[0].strip("`")
    for kind in (int, float):
        try:
            return kind(word)
        except ValueError:
            pass
    return yaml.safe_load(word)


def stated(text: str) -> list[tuple[str, object]]:
    """Every `key` (value) in the text, but `option` (default)."""
    return [(key, value(raw)) for key, raw in KEY_VALUE.findall(text) if raw.strip() != "default"]


def run_value(cfg: DictConfig, key: str) -> object:
    """The value a run of `cfg` takes for `key`: its config's, else its node's class's default
    (Lightning's and torch's are not written into the config)."""
    node, _, name = key.rpartition(".")
    target = OmegaConf.select(cfg, f"{node}._target_") if node else None
    default = settings(target)[0].get(name, Setting(None)).default if target else "<missing>"
    return OmegaConf.select(cfg, key, default="<missing>" if default is inspect.Parameter.empty else default)


def wrong_defaults(text: str, cfg: DictConfig) -> list[str]:
    wrong = []
    for key, expected in stated(text):
        actual = run_value(cfg, key)
        actual = OmegaConf.to_container(actual) if OmegaConf.is_config(actual) else actual
        if actual != expected:
            wrong.append(f"`{key}` is stated as {expected!r}, the config has {actual!r}")
    return wrong


def group_table() -> dict[str, tuple[list[str], str | None]]:
    """The README's config-group rows: group -> (options, the default or None)."""
    rows = {}
    for line in section(README, "Config groups").splitlines():
        if m := GROUP_ROW.match(line):
            options = re.findall(r"`([a-z0-9_]+)`( \(default\))?", m.group(2))
            defaults = [name for name, marked in options if marked]
            assert len(defaults) <= 1, line
            rows[m.group(1)] = ([name for name, _ in options], defaults[0] if defaults else None)
    return rows


def test_value_parsing():
    assert stated("`a.b` (1e-2, the peak), `c` (null: all), `d` (`mse`; or `bce`), `e` (5000 of them), `f` ([32, 64]), `g` ([]: none)") == [
        ("a.b", 0.01),
        ("c", None),
        ("d", "mse"),
        ("e", 5000),
        ("f", [32, 64]),
        ("g", []),
    ]
    assert stated("`conv` (default), `x` ([a link](y.md)), `manifold.png` (images decoded)") == []


def test_config_group_table_gives_the_composed_defaults():
    rows = group_table()
    assert {"model", "data", "scheduler", "trainer", "hydra/launcher"} <= rows.keys()
    choices = composed("config").hydra.runtime.choices
    search = composed("config", "hparams_search=optuna").hydra.runtime.choices
    undocumented = {group for group in choices if not group.startswith("hydra/")} - rows.keys()
    assert not undocumented, f"config groups missing from the README's table: {sorted(undocumented)}"
    for group, (_, default) in rows.items():
        actual = (search if group.startswith("hydra/sweeper/") else choices)[group]
        assert actual == default, f"README: the default of `{group}` is stated as {default}, the config composes {actual}"


def test_config_group_table_lists_every_option():
    for group, (options, _) in group_table().items():
        files = {p.stem for p in (CONFIG_DIR / group).glob("*.yaml")}
        unlisted = files - set(options) - BASES.get(group, set())
        assert not unlisted, f"README: options of `{group}` missing from its row: {sorted(unlisted)}"
        for option in set(options) - files:  # not in conf/: it comes from a plugin (Hydra's launchers), and composes
            assert composed("config", f"{group}={option}").hydra.runtime.choices[group] == option


def test_numbers_in_the_readme_config_section_are_the_config():
    text = section(README, "Config groups")
    assert {"trainer.max_epochs", "optimizer.lr", "data.batch_size", "noise", "seed"} <= {key for key, _ in stated(text)}
    assert not wrong_defaults(text, composed("config")), "\n".join(wrong_defaults(text, composed("config")))


# Sections of the topic pages whose `key` (value) statements are checked: (page, heading, the config
# and overrides to compose, and the group whose option each table row is about, or None to check the
# whole section).
STATED_DEFAULTS = [
    ("docs/evaluation.md", "evaluate", "evaluate", (), None),
    ("docs/evaluation.md", "sample", "sample", (), None),
    ("docs/evaluation.md", "anomaly", "anomaly", (), None),
    ("docs/evaluation.md", "The study table", "study", (), None),
    ("docs/evaluation.md", "classifier", "classifier", (), None),
    ("docs/variants.md", "Architectures", "config", (), "model"),
    ("docs/variants.md", "Variants", "config", (), "variant"),
    ("docs/variants.md", "Priors", "config", ("variant=vae",), "prior"),
    ("docs/datasets.md", "The datasets", "config", (), "data"),
    ("docs/datasets.md", "A folder of your own images", "config", ("data=folder",), None),
    ("docs/training.md", "Progress without a terminal", "config", (), None),
]


@pytest.mark.parametrize(("page", "heading", "config", "overrides", "group"), STATED_DEFAULTS, ids=lambda v: str(v))
def test_topic_pages_state_the_config_defaults(page, heading, config, overrides, group):
    text = section(REPO_DIR / page, heading)
    wrong = []
    if group is None:
        assert stated(text), f"{page} '{heading}' states no `key` (value)"
        wrong = wrong_defaults(text, composed(config, *overrides))
    else:
        rows = [line for line in text.splitlines() if line.startswith("| `")]
        assert rows, f"{page} '{heading}' has no table rows"
        for row in rows:
            option = re.match(r"\| `(?:\w+=)?(\w+)", row).group(1)
            wrong += [f"{option}: {w}" for w in wrong_defaults(row, composed(config, *overrides, f"{group}={option}"))]
    assert not wrong, f"{page} '{heading}':\n" + "\n".join(wrong)


# The commands table, the console scripts and the Makefile

COMMAND_ROW = re.compile(r"^\| `python -m autoencoder\.(\w+)` \| `([\w-]+)` \|")


def command_rows() -> list[tuple[str, str]]:
    """(module, console script) of each row of the README's commands table."""
    return [m.groups() for m in map(COMMAND_ROW.match, section(README, "Commands").splitlines()) if m]


def test_commands_table_names_every_command_and_its_console_script():
    rows = dict(command_rows())
    modules = {p.stem for p in (REPO_DIR / "autoencoder").glob("*.py")} - {"__init__"}
    assert set(rows) == modules, f"README commands table vs autoencoder/*.py: {sorted(set(rows) ^ modules)}"
    for module, script in rows.items():
        assert script == "autoencoder-" + module.replace("_", "-")


def test_console_scripts_are_the_commands():
    """pyproject.toml's [project.scripts] run the modules the README's table names (skipped until they exist)."""
    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO_DIR / "pyproject.toml").read_text()).get("project", {}).get("scripts")
    if not scripts:
        pytest.skip("pyproject.toml declares no console scripts yet")
    rows = {script: module for module, script in command_rows()}
    assert set(scripts) == set(rows), f"console scripts vs the README's table: {sorted(set(scripts) ^ set(rows))}"
    for script, entry in scripts.items():
        assert entry.split(":")[0] == f"autoencoder.{rows[script]}", f"{script} runs {entry}, the README says autoencoder.{rows[script]}"


PENDING_MAKE_VARIABLES = {"TORCH_INDEX": "the CPU-only install"}


def test_make_targets_and_variables_exist():
    makefile = (REPO_DIR / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))
    text = "\n".join(p.read_text(encoding="utf-8") for p in PAGES)
    commands = re.findall(r"(?:^|`)make ([a-z][\w-]*)((?: [A-Z_]+=\S+)*)", text, re.MULTILINE)
    assert {target for target, _ in commands} >= {"install", "train", "test", "bench"}
    missing_targets = sorted({target for target, _ in commands} - targets)
    assert not missing_targets, f"the docs run make targets the Makefile lacks: {missing_targets}"
    variables = {v for _, assignments in commands for v in re.findall(r"([A-Z_]+)=", assignments)}
    missing = {v for v in variables if not re.search(rf"^{v} \??=", makefile, re.MULTILINE)}
    if missing and missing <= PENDING_MAKE_VARIABLES.keys():
        pytest.skip(f"not in the Makefile yet: {', '.join(PENDING_MAKE_VARIABLES[v] for v in sorted(missing))}")
    assert not missing, f"the docs set make variables the Makefile lacks: {sorted(missing)}"


def test_callbacks_are_all_described():
    names = OmegaConf.load(CONFIG_DIR / "callbacks" / "default.yaml").keys()
    text = section(REPO_DIR / "docs" / "training.md", "Callbacks and loggers")
    listed = re.findall(r"^- `(\w+)`:", text, re.MULTILINE)
    assert listed == list(names), "docs/training.md lists the callbacks of conf/callbacks/default.yaml, in its order"


# (d) The README's Python example and quick start run


def test_headline_command_is_the_one_set_up_and_quick_start_run():
    assert HEADLINE in fenced(section(README, "Set-up"), "bash")[0]
    assert HEADLINE in fenced(section(README, "Quick start"), "bash")[0]


def test_python_example_runs(make_cfg, tmp_path, monkeypatch):
    """The example loads the newest run's last checkpoint from outputs/ in the folder it runs in."""
    from autoencoder.training.run import train

    (code,) = fenced(section(README, "A checkpoint in Python"), "python")
    train(make_cfg("model.latent_dim=3", "logger=none", "~callbacks.validation_images", output_dir=tmp_path / "outputs" / "2026-01-02" / "08-00-00_2"))
    older = tmp_path / "outputs" / "2026-01-01" / "09-00-00_1" / "checkpoints"
    older.mkdir(parents=True)
    (older / "last.ckpt").write_bytes(b"an older run's")  # not the newest: left alone
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["checkpoint"] == Path("outputs/2026-01-02/08-00-00_2/checkpoints/last.ckpt")
    assert tuple(namespace["codes"].shape) == (8, 3)
    assert tuple(namespace["reconstructions"].shape) == (8, 1, 28, 28)


def quick_start() -> list[list[str]]:
    """The quick start's `python -m autoencoder.` lines, as argument lists without `python -m`."""
    (block,) = fenced(section(README, "Quick start"), "bash")
    return [shlex.split(line, comments=True)[2:] for line in block.splitlines() if line.startswith("python -m autoencoder.")]


@pytest.mark.slow
def test_quick_start_commands_run(tmp_path, fake_mnist):
    commands = quick_start()
    assert commands and any("-m" in c[1:] for c in commands), "the quick start shows a single run and a sweep"
    for args in commands:
        result = run_module(*args, *FAST, cwd=tmp_path, env={DATA_ENV: str(fake_mnist)}, timeout=600)
        assert result.returncode == 0, f"{shlex.join(args)}:\n{result.stderr[-3000:]}"
    runs = list((tmp_path / "outputs").glob("*/*/metrics.json"))  # single runs: outputs/<day>/<time>_<pid>/
    assert runs and all('"status": "completed"' in p.read_text() for p in runs)
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    assert (sweep / "summary.md").is_file() and len(list(sweep.glob("*/metrics.json"))) == 4
