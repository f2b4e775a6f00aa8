"""`python -m benchmarks.larger_than_memory <folder> [images] [steps] [runs]`: training on a folder whose
images are read from their uint8 cache file (data.in_memory=false) against the same folder held in
memory (data.in_memory=true), for docs/datasets.md.

It writes `images` (default 200000: 2.3 GiB decoded) generated 64x64 RGB PNGs into <folder> unless it
holds them already, then runs, each in a fresh process so that its peak memory is its own: in
memory; from the cache, built by that run; from the cache again, its pages in the kernel's page
cache; from the cache with its pages dropped from the page cache first (posix_fadvise, this file
only), so that batches are read from the disk (`runs`, comma-separated, picks some). Each trains `steps` batches of 64 (default 250); the
samples/s are those of the batches after the first 50. The disk's own speed is read from the cache
file with its pages dropped: sequentially in 1 MiB reads, and image by image at random.
"""

import json
import os
import random
import resource
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

STARTED = time.perf_counter()
SIZE, BATCH, WARMUP, CLASSES = 64, 64, 50, 8
RUNS = ("memory", "cache built", "cache", "cache from disk")


def _write(args: tuple[Path, int, int]) -> None:
    """Images start..stop-1: smooth waves with some noise, so that the PNGs are of a usual size."""
    folder, start, stop = args
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        a, b, c = rng.uniform(0.05, 0.3, 3)
        waves = np.stack([np.sin(a * x + i), np.cos(b * y + i), np.sin(c * (x + y))], -1)  # (H, W, 3)
        pixels = (128 + 100 * waves + rng.integers(0, 24, (SIZE, SIZE, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"class{i % CLASSES}" / f"{i:07d}.png", compress_level=1)


def generate(folder: Path, images: int) -> None:
    if sum(1 for _ in folder.glob("class*/*.png")) == images:
        return
    for c in range(CLASSES):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    step = 4096
    with Pool(os.cpu_count()) as pool:
        pool.map(_write, [(folder, start, min(start + step, images)) for start in range(0, images, step)])


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def disk_speed(path: Path, reads: int = 5000) -> dict:
    """MB/s reading `path` from the disk in 1 MiB reads, and images/s reading one image at a time at
    random offsets, its pages dropped from the page cache before each."""
    drop_from_page_cache(path)
    started, read = time.perf_counter(), 0
    with path.open("rb", buffering=0) as file:
        while chunk := file.read(2**20):
            read += len(chunk)
    sequential = read / (time.perf_counter() - started) / 1e6
    drop_from_page_cache(path)
    image = 3 * SIZE * SIZE
    count = (path.stat().st_size - 4096) // image
    offsets = [4096 + image * i for i in random.Random(0).sample(range(count), reads)]
    fd = os.open(path, os.O_RDONLY)
    try:
        started = time.perf_counter()
        for offset in offsets:
            os.pread(fd, image, offset)
        per_second = reads / (time.perf_counter() - started)
    finally:
        os.close(fd)
    return {"sequential_mb_s": sequential, "random_images_s": per_second}


def train_once(folder: str, in_memory: str, steps: int) -> None:
    """One run (in this process): prints its figures as JSON."""
    import lightning as L

    from autoencoder.utils.cli import load_config
    from autoencoder.workflows.jobs import train_and_evaluate

    class Clock(L.Callback):
        first = start = end = None
        samples = 0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.first = self.first or time.perf_counter()
            if batch_idx == WARMUP:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx >= WARMUP:
                self.samples += len(batch[0])
                self.end = time.perf_counter()

    overrides = [
        "data=folder",
        f"data.path={folder}",
        f"data.in_memory={in_memory}",
        f"data.batch_size={BATCH}",
        "model=mlp",  # a step of milliseconds, so that the reading's share of it shows
        "trainer.precision=32-true",
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={steps}",
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_model_summary=false",
        "trainer.accelerator=cpu",
        "logger=none",
        f"output_dir={folder}-runs/{in_memory}-{os.getpid()}",
    ]
    cfg = load_config("config", overrides)  # as the command line takes them: data.in_memory is a setting of the folder's signature
    clock = Clock()
    train_and_evaluate(cfg, callbacks=[clock])
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    print(
        json.dumps(
            {
                "to_first_batch_s": clock.first - STARTED,
                "samples_per_s": clock.samples / (clock.end - clock.start),
                "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                "rss_anon_gib_at_end": int(status["RssAnon"].split()[0]) / 2**20,
            }
        )
    )


def main(folder: Path, images: int, steps: int, runs: tuple[str, ...]) -> None:
    folder = folder.resolve()
    started = time.perf_counter()
    generate(folder, images)
    print(f"{images} images in {folder}: {time.perf_counter() - started:.0f} s to have them", flush=True)
    caches = folder / ".autoencoder-cache"
    rows = []
    for run in runs:
        if run == "cache built":
            for old in caches.glob("*.u8"):
                old.unlink()
        if run == "cache from disk":
            for cache in caches.glob("*.u8"):
                drop_from_page_cache(cache)
        mode = "true" if run == "memory" else "false"
        result = subprocess.run([sys.executable, "-m", "benchmarks.larger_than_memory", "--run", str(folder), mode, str(steps)], capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"{run}: exit status {result.returncode}\n{result.stderr[-3000:]}")
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append((run, figures))
        print(run, figures, flush=True)
    decoded = images * 3 * SIZE * SIZE / 2**30
    print(f"\n{images} images 3x{SIZE}x{SIZE}: {decoded:.2f} GiB decoded; disk: {disk_speed(caches / 'train-64-RGB.u8')}\n")
    print("| images from | to the first batch (s) | samples/s | peak resident memory (GiB) |\n|---|---|---|---|")
    for run, f in rows:
        print(f"| {run} | {f['to_first_batch_s']:.0f} | {f['samples_per_s']:.0f} | {f['peak_rss_gib']:.2f} |")


if __name__ == "__main__":
    if sys.argv[1] == "--run":
        train_once(*sys.argv[2:4], int(sys.argv[4]))
    else:
        images, steps = (int(sys.argv[i]) if len(sys.argv) > i else default for i, default in ((2, 200000), (3, 250)))
        main(Path(sys.argv[1]), images, steps, tuple(sys.argv[4].split(",")) if len(sys.argv) > 4 else RUNS)
