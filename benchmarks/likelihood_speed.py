"""`python -m benchmarks.likelihood_speed [options]`: the importance-weighted likelihood pass
(autoencoder.evaluation.likelihood) against its own compute bound, for docs/benchmarks.md.

The pass decodes `images x samples` codes; nothing it does can be cheaper than the decoder's
forward pass over as many codes. So the bound is the decoder alone on codes made before the clock
starts, at the best of a few batch sizes, and the pass's figure is its time over the bound's. Each
setting is timed `repeats` times, the settings taking turns within a repeat so that a slow spell of a
shared machine does not fall on one of them, and each figure is the fastest repeat. The process's CPU
time (user and system, the kernel's share apart) is reported beside the wall time: where memory is
handed to the kernel and back on every batch, the system time says so.

The model is the conv VAE of docs/results.md (conf/config.yaml with variant=vae loss=bce), its
weights as built or a checkpoint's (`--checkpoint`); the images are random binary ones: the time of a
pass does not depend on the weights or on the pixels. Its figures extrapolate to the 10,000 test
images of MNIST.
"""

import argparse
import json
import resource
import time
from collections.abc import Callable

import torch
from hydra.utils import instantiate

from autoencoder.evaluation.likelihood import likelihood
from autoencoder.models.module import LitAutoencoder
from autoencoder.utils.cli import load_config
from autoencoder.utils.tables import markdown_table

TEST_IMAGES = 10_000


def timed(work: Callable[[], object]) -> tuple[float, float, float]:
    """Wall, user and system seconds of `work()`."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    work()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def conv_vae(checkpoint: str | None) -> LitAutoencoder:
    if checkpoint:
        return LitAutoencoder.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    cfg = load_config("config", ["variant=vae", "loss=bce", "data.binarize=true"])
    return instantiate(cfg.module).eval()


@torch.no_grad()
def decoder_alone(module: LitAutoencoder, codes: int, batch: int) -> Callable[[], None]:
    """The decoder's forward pass over `codes` codes, `batch` at a time, the codes made beforehand."""
    z = torch.randn(batch, module.net.latent_dim)

    def work() -> None:
        for _ in range(codes // batch):
            module.net.decode(z)

    return work


def measure(module: LitAutoencoder, images: int, samples: int, decodes: list[int], batches: list[int], repeats: int) -> dict:
    x = (torch.rand(images, *module.net.input_shape, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    runs = {f"pass, decodes={d}": (lambda d=d: likelihood(module, x, samples, d)) for d in decodes}
    runs |= {f"decoder alone, batch {b}": decoder_alone(module, images * samples, b) for b in batches}
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, work in runs.items():
            times[name].append(timed(work))
    fastest = {name: min(found) for name, found in times.items()}  # by wall time
    bound = min(wall for name, (wall, _, _) in fastest.items() if name.startswith("decoder"))
    scale = TEST_IMAGES / images
    rows = {
        name: {
            "seconds": wall,
            "user_seconds": user,
            "system_seconds": system,
            "over_bound": wall / bound,
            "minutes_for_test_set": wall * scale / 60,
        }
        for name, (wall, user, system) in fastest.items()
    }
    return {"images": images, "samples": samples, "repeats": repeats, "threads": torch.get_num_threads(), "bound_seconds": bound, "runs": rows}


def table(result: dict) -> str:
    return markdown_table(
        ["run", "wall s", "user s", "system s", "/ bound", f"min for {TEST_IMAGES:,} images"],
        [
            [name, *(f"{r[key]:.2f}" for key in ("seconds", "user_seconds", "system_seconds", "over_bound")), f"{r['minutes_for_test_set']:.1f}"]
            for name, r in result["runs"].items()
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a VAE checkpoint (default: the conv VAE as built)")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--decodes", type=int, nargs="+", default=[10000, 1000, 256, 128, 64])
    parser.add_argument("--batches", type=int, nargs="+", default=[1000, 256, 128, 64, 32])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = measure(conv_vae(args.checkpoint), args.images, args.samples, args.decodes, args.batches, args.repeats)
    print(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
