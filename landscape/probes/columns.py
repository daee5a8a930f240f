"""What the probes' HDF5 datasets hold: the ``description`` of every column they write.

One place for both writers: :class:`~landscape.probes.H5Sink` (``/probe/<variant>``,
``/ics/<variant>`` of a run log or a probe log) and the offline probes of saved checkpoints
(``/offline_probe``, ``/offline_ics``, ``/offline_checkpoints`` of ``probes.h5``). The probe
goes along ``d`` (the gradient ``g`` by default) from θ, on batch B, with step sizes η_k;
ICS compares a layer's gradient G with G′, after the earlier layers' update
(``docs/hdf5-schema.md``, ``docs/science.md``).
"""

from __future__ import annotations

__all__ = [
    "ICS_COLUMNS",
    "OFFLINE_BATCHES",
    "OFFLINE_ICS_COLUMNS",
    "OFFLINE_PROBE_COLUMNS",
    "OFFLINE_SOURCE_COLUMNS",
    "PROBE_COLUMNS",
]

PROBE_COLUMNS = {
    "step": "training step probed (updates applied before it), before its own update",
    "step_sizes": "step sizes η_k used at this step (lr × the grid's multipliers)",
    "loss": "L_B(θ − η_k d): the batch loss after a step η_k along d",
    "grad_distance": "‖∇L_B(θ − η_k d) − g‖₂: gradient change (gradient predictiveness)",
    "ratio": "grad_distance / ‖η_k d‖₂",
    "distance": "‖η_k d‖₂: length of the step",
    "grad_cosine": "cos(∇L_B(θ − η_k d), g)",
    "beta": "effective β-smoothness: the largest finite ratio (NaN if none)",
    "grad_norm": "‖g‖₂: norm of the batch gradient at θ",
    "base_loss": "L_B(θ): the batch loss at θ",
    "direction_norm": "‖d‖₂: norm of the probe direction",
}
ICS_COLUMNS = {
    "step": "training step measured (updates applied before it)",
    "l2": "‖G − G′‖₂ per layer: internal covariate shift (Santurkar et al. Def. 2.1)",
    "cos": "cos(G, G′) per layer",
    "grad_norm": "‖G‖₂ per layer, to put l2 in scale",
    "lr": "learning rate of the SGD update −lr·g; NaN when the update was given",
}

_STEP = "step of the probed checkpoint (updates applied)"
_STATS = {"mean": "mean", "std": "sample standard deviation (ddof 1, NaN for one batch)"}


def _spread(names: dict[str, str]) -> dict[str, str]:
    """``<name>_mean`` and ``<name>_std``: over the probe batches (axis 0)."""
    return {
        f"{name}_{stat}": f"{text} over the probe batches of {what}"
        for name, what in names.items()
        for stat, text in _STATS.items()
    }


OFFLINE_PROBE_COLUMNS = {
    "step": _STEP,
    "step_sizes": PROBE_COLUMNS["step_sizes"],
    **{
        k: f"{PROBE_COLUMNS[k]}, per probe batch"
        for k in ("loss", "grad_distance", "ratio", "grad_cosine", "beta", "grad_norm", "base_loss")
    },
    **_spread({
        "beta": "beta",
        "loss_min": "the smallest loss over η_k",
        "loss_max": "the largest loss over η_k",
        "grad_distance_min": "the smallest grad_distance over η_k",
        "grad_distance_max": "the largest grad_distance over η_k",
    }),
}  # fmt: skip
OFFLINE_ICS_COLUMNS = {
    "step": _STEP,
    **{k: f"{ICS_COLUMNS[k]}, per probe batch (update −lr·g)" for k in ("l2", "cos", "grad_norm")},
    **_spread({"l2": "l2, per layer", "cos": "cos, per layer"}),
}
OFFLINE_SOURCE_COLUMNS = {
    "step": "step of a checkpoint whose rows are complete (this row marks it done)",
    "sha256": "SHA-256 of the checkpoint file",
    "file": "path of the checkpoint file as given",
}
OFFLINE_BATCHES = (
    "training-set indices of the probe batches, one row per batch (the same for every "
    "checkpoint and variant)"
)
