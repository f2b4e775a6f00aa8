"""Index batches for images held in memory or read from a cache file: one indexing op per batch
instead of a per-sample Dataset, and a per-epoch seeded order that a resumed run repeats, from the
batch it stopped at. The same index batches pick the same images from either."""

import math

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from autoencoder.data.cache import CachedImages


class ShuffledBatches(Sampler[torch.Tensor]):
    """Index batches over `n` items: slices of a permutation seeded by `seed + epoch` (Lightning
    calls `set_epoch` before each epoch, so a resumed run sees the same order), or of 0..n-1 when
    `shuffle` is off. Every item comes once per epoch; the last batch may be short.

    Under DDP, process `rank` of `world_size` takes every world_size-th batch. All processes must
    take the same number of steps, so when the batches do not divide evenly the last processes
    wrap around to the first batches (as torch's DistributedSampler pads).

    Its state is the epoch and the batches taken from it so far; a sampler given that state
    (`load_state_dict`) starts its next pass over that epoch after them."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.shuffle, self.seed, self.device = n, batch_size, shuffle, seed, device
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.taken = 0  # batches of this epoch yielded so far
        self.skip = 0  # batches of this epoch a resumed run already trained on

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.n / self.batch_size) / self.world_size)

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n)
        batches = order.to(self.device).split(self.batch_size)  # one copy per epoch, none per batch
        mine = range(self.rank, len(self) * self.world_size, self.world_size)
        self.taken, self.skip = self.skip, 0
        for i in mine[self.taken :]:
            self.taken += 1
            yield batches[i % len(batches)]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "taken": self.taken}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.skip = state["epoch"], state["taken"]


class ResumableLoader(DataLoader):
    """A DataLoader over ShuffledBatches whose position Lightning saves in every checkpoint and
    restores on resume (its `state_dict` protocol), so that a run stopped mid-epoch goes on with
    the next batch of that epoch instead of starting it over."""

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


class GatheredImages(Dataset):
    """The images and labels at `index` (positions in a cache file's images): each index batch is
    gathered from the file as it is asked for, so that the split is never copied into memory."""

    def __init__(self, images: CachedImages, labels: torch.Tensor, index: torch.Tensor):
        self.images, self.labels, self.index = images, labels, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = self.index[batch]  # (B,) positions in the file
        return torch.from_numpy(self.images.gather(positions.numpy())), self.labels[positions]  # (B, C, H, W) uint8, (B,)

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split in memory, as TensorDataset's: for consumers outside a Trainer."""
        return self[torch.arange(len(self))]
