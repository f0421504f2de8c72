"""The running per-latent top-k that absorbs one batch at a time."""

from __future__ import annotations

import math

import torch

from steering.topk.encode import ChunkedCodes
from steering.topk.errors import TopKError

# ----------------------------------------------------------------------------- the running top-k


class RunningTopK:
    """Per-latent top-k images by mean patch activation, with their maps, plus firing statistics."""

    def __init__(self, d_sae: int, k: int, n_patches: int, map_dtype: torch.dtype = torch.float16,
                 device: str | torch.device = "cpu") -> None:
        self.k, self.n_patches = k, n_patches
        self.scores = torch.full((d_sae, k), -math.inf, device=device)  # [n, k], -inf = empty slot
        self.ids = torch.full((d_sae, k), -1, dtype=torch.long, device=device)  # [n, k]
        self.maps = torch.zeros(d_sae, k, n_patches, dtype=map_dtype, device=device)  # [n, k, P]
        self.patch_active = torch.zeros(d_sae, dtype=torch.long, device=device)
        self.image_active = torch.zeros(d_sae, dtype=torch.long, device=device)
        self.max_activation = torch.zeros(d_sae, device=device)
        self.n_images = 0
        """Images absorbed (the statistics' denominator)."""
        self.skipped: list[int] = []
        """Ids of the images that could not be read, ascending."""

    @property
    def d_sae(self) -> int:
        return self.scores.shape[0]

    @property
    def n_seen(self) -> int:
        """Images absorbed or skipped: where a resumed pass carries on."""
        return self.n_images + len(self.skipped)

    def skip(self, image_ids: list[int]) -> None:
        """Count unreadable images as seen (so a resume does not read them again) without absorbing them."""
        self.skipped = sorted(self.skipped + list(image_ids))

    def chunk_size(self, n_rows: int, batch: int, budget: int) -> int:
        per_latent = max(n_rows, (self.k + batch) * self.n_patches)
        return max(1, min(self.d_sae, budget // per_latent))

    @torch.no_grad()
    def update(self, codes: ChunkedCodes, image_ids: torch.Tensor) -> None:
        """Absorb one batch: ``codes`` covers [B * P] rows, ``image_ids`` [B] are global ids."""
        B, P = image_ids.shape[0], self.n_patches
        image_ids = image_ids.to(self.ids.device)
        for c0 in range(0, self.d_sae, codes.chunk):
            c1 = min(c0 + codes.chunk, self.d_sae)
            acts = codes.codes(c0, c1).float().view(B, P, c1 - c0)  # [B, P, C]
            on = acts > 0
            self.patch_active[c0:c1] += on.sum((0, 1))
            self.image_active[c0:c1] += on.any(1).sum(0)
            self.max_activation[c0:c1] = torch.maximum(self.max_activation[c0:c1], acts.amax((0, 1)))
            batch_scores = acts.mean(1).T  # [C, B]
            batch_scores = torch.where(batch_scores > 0, batch_scores, -math.inf)
            # Stable sort over (running entries, then batch in id order): ties go to the lower id,
            # whatever the batching, so one pass equals a global sort.
            scores = torch.cat([self.scores[c0:c1], batch_scores], 1)  # [C, k + B]
            order = scores.sort(dim=1, descending=True, stable=True).indices[:, :self.k]  # [C, k]
            rows = (order >= self.k).any(1).nonzero().squeeze(1)  # latents a batch image entered
            if rows.numel() == 0:
                continue
            order, lat = order[rows], rows + c0  # [m, k], [m]
            self.scores[lat] = scores[rows].gather(1, order)
            ids = torch.cat([self.ids[lat], image_ids[None].expand(rows.numel(), B)], 1)
            self.ids[lat] = ids.gather(1, order)
            new_maps = acts[:, :, rows].permute(2, 0, 1).to(self.maps.dtype)  # [m, B, P]
            maps = torch.cat([self.maps[lat], new_maps], 1)  # [m, k + B, P]
            self.maps[lat] = maps.gather(1, order[..., None].expand(-1, -1, P))
        self.n_images += B

    @torch.no_grad()
    def merge(self, other: RunningTopK) -> None:
        """Absorb the state of a collection over other images: afterwards this state is the one a single
        pass over both would leave, byte for byte.

        A pass keeps each latent's entries sorted by score, best first, ties to the lower image id (see
        update); so the merge sorts the union by id, then stably by score, and keeps the first k. Empty
        slots (-inf, id -1, a zero map) sort last, as in a pass. The statistics add up (max for the largest).
        """
        if (other.d_sae, other.k, other.n_patches) != (self.d_sae, self.k, self.n_patches):
            raise TopKError(f"cannot merge a top-k of {other.d_sae} latents, k {other.k}, {other.n_patches} "
                            f"patches into one of {self.d_sae}, {self.k}, {self.n_patches}")
        scores = torch.cat([self.scores, other.scores.to(self.scores.device)], 1)  # [n, 2k]
        ids = torch.cat([self.ids, other.ids.to(self.ids.device)], 1)
        by_id = ids.sort(dim=1, stable=True).indices
        by_score = scores.gather(1, by_id).sort(dim=1, descending=True, stable=True).indices[:, :self.k]
        order = by_id.gather(1, by_score)  # [n, k] into the union
        maps = torch.cat([self.maps, other.maps.to(self.maps.device)], 1)  # [n, 2k, P]
        self.scores, self.ids = scores.gather(1, order), ids.gather(1, order)
        self.maps = maps.gather(1, order[..., None].expand(-1, -1, self.n_patches))
        self.patch_active += other.patch_active.to(self.patch_active.device)
        self.image_active += other.image_active.to(self.image_active.device)
        self.max_activation = torch.maximum(self.max_activation, other.max_activation.to(self.max_activation.device))
        self.n_images += other.n_images
        self.skip(other.skipped)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], device: str | torch.device = "cpu") -> RunningTopK:
        """A state as ``state_dict`` gave it (sizes and map dtype read from its tensors)."""
        d_sae, k, n_patches = state["maps"].shape
        out = cls(d_sae, k, n_patches, state["maps"].dtype, device)
        out.load_state_dict(state)
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"scores": self.scores, "ids": self.ids, "maps": self.maps, "patch_active": self.patch_active,
                "image_active": self.image_active, "max_activation": self.max_activation,
                "n_images": torch.tensor(self.n_images), "skipped": torch.tensor(self.skipped, dtype=torch.long)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("scores", "ids", "maps", "patch_active", "image_active", "max_activation"):
            mine = getattr(self, name)
            if state[name].shape != mine.shape:
                raise TopKError(f"checkpoint {name} has shape {tuple(state[name].shape)}, expected "
                                f"{tuple(mine.shape)}: use a new --out or --restart")
            mine.copy_(state[name])
        self.n_images = int(state["n_images"])
        skipped = state.get("skipped")  # absent from checkpoints written before images could be skipped
        self.skipped = [] if skipped is None else [int(i) for i in skipped.tolist()]
