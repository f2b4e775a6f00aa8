import io

from autoencoder.utils.progress import Counted, Reporter, Stopwatch, hms


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_line_at_each_fraction_mark_when_steps_are_fast():
    stream, clock = io.StringIO(), Clock()
    reporter = Reporter(every_seconds=30, every_fraction=0.25, stream=stream, clock=clock)
    for done in range(1, 21):  # 20 units of work, a second each: no 30 s interval passes
        clock.now += 1
        reporter.update(done / 20, f"work {done}/20")
    assert lines(stream) == [
        "progress: work 5/20  25%  00:00:05",
        "progress: work 10/20  50%  00:00:10",
        "progress: work 15/20  75%  00:00:15",
        "progress: work 20/20  100%  00:00:20",
    ]


def test_a_line_every_interval_when_steps_are_slow():
    stream, clock = io.StringIO(), Clock()
    reporter = Reporter(every_seconds=30, every_fraction=0.5, stream=stream, clock=clock)
    for done in range(1, 101):  # 10 s per percent: the 30 s interval comes long before each half
        clock.now += 10
        reporter.update(done / 100, "slow", f"item {done}")
    shown = lines(stream)
    assert shown[:3] == ["progress: slow  3%  item 3  00:00:30", "progress: slow  6%  item 6  00:01:00", "progress: slow  9%  item 9  00:01:30"]
    assert "progress: slow  50%  item 50  00:08:20" in shown  # a mark passed, 20 s after the last line
    assert "progress: slow  53%  item 53  00:08:50" in shown  # the interval counts from that line
    assert shown[-1] == "progress: slow  100%  item 100  00:16:40"
    assert len(shown) == 16 + 1 + 16 + 1  # items 3 to 48 and 53 to 98 by time, 50 and 100 by marks


def test_marks_need_no_rounding_luck():
    stream, clock = io.StringIO(), Clock()
    reporter = Reporter(every_seconds=1e9, every_fraction=0.1, stream=stream, clock=clock)
    for done in range(1, 11):
        reporter.update(done / 10, "tenths")  # 3 / 10 / 0.1 is 2.9999999999999996
    assert [line.split()[2] for line in lines(stream)] == [f"{p}%" for p in range(10, 101, 10)]


def test_start_begins_a_new_piece_of_work():
    stream, clock = io.StringIO(), Clock()
    reporter = Reporter(every_seconds=30, every_fraction=0.5, stream=stream, clock=clock)
    clock.now += 40
    reporter.update(0.5, "epoch 1")
    reporter.start()
    clock.now += 5
    reporter.update(0.2, "epoch 2")  # neither a mark nor 30 s since the start
    reporter.update(0.5, "epoch 2")
    assert lines(stream) == ["progress: epoch 1  50%  00:00:40", "progress: epoch 2  50%  00:00:05"]


def test_nothing_on_a_terminal():
    stream, clock = Terminal(), Clock()
    reporter = Reporter(every_seconds=1, every_fraction=0.1, stream=stream, clock=clock)
    for done in range(1, 11):
        clock.now += 60
        reporter.update(done / 10, "work")
    assert reporter.terminal and stream.getvalue() == ""


def test_counted_work_names_the_units_and_the_step():
    stream, clock = io.StringIO(), Clock()
    steps = Counted(Reporter(every_seconds=30, every_fraction=0.5, stream=stream, clock=clock), "evaluate", 4, "steps")
    for note in ("reconstruction", "denoising gaussian 0.1", "probes on latent", "figures"):
        clock.now += 2
        steps.advance(note=note)
    images = Counted(Reporter(every_seconds=30, every_fraction=0.4, stream=stream, clock=clock), "likelihood k=1000", 10000, "images")
    for _ in range(5):
        clock.now += 38
        images.advance(2000)
    assert lines(stream) == [
        "progress: evaluate  2/4 steps  50%  denoising gaussian 0.1  00:00:04",
        "progress: evaluate  4/4 steps  100%  figures  00:00:08",
        "progress: likelihood k=1000  2000/10000 images  20%  00:00:38",
        "progress: likelihood k=1000  4000/10000 images  40%  00:01:16",
        "progress: likelihood k=1000  6000/10000 images  60%  00:01:54",
        "progress: likelihood k=1000  8000/10000 images  80%  00:02:32",
        "progress: likelihood k=1000  10000/10000 images  100%  00:03:10",
    ]


def test_each_line_is_flushed():
    class Unbuffered(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    stream = Unbuffered()
    Reporter(every_seconds=30, every_fraction=0.5, stream=stream, clock=Clock()).line(0.5, "work")
    assert stream.flushes == 1 and lines(stream) == ["progress: work  50%  00:00:00"]


def test_hms():
    assert hms(0) == "00:00:00" and hms(3723.9) == "01:02:03"


def test_a_stopwatch_counts_only_the_spans_it_ran():
    now = [10.0]
    watch = Stopwatch(lambda: now[0])
    now[0] = 13.0
    assert watch.seconds == 3.0  # running
    watch.pause()
    now[0] = 20.0  # a validation: not counted
    watch.pause()  # a second pause adds nothing
    assert watch.seconds == 3.0
    watch.resume()
    now[0] = 22.5
    assert watch.seconds == 5.5
    watch.restart()
    assert watch.seconds == 0.0
