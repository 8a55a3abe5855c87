"""Shape checks of the networks' inputs, without torch: the config is validated with them when
the workflow's DAG is built, by the driver environment, which has no torch."""

from __future__ import annotations

from dicebench.errors import DicebenchError


def check_shape(name: str, shape: tuple[int, ...], dims: int, divisor: int, norm_kind: str, training: bool) -> None:
    """The input shape (batch, channels, *spatial) cannot go through when it has the wrong
    number of dimensions, a spatial size not divisible by the down-sampling factor, or a
    bottleneck where the normalisation sees a single value per channel (BatchNorm training
    with batch size 1 on a 1-voxel bottleneck; InstanceNorm on a 1-voxel bottleneck)."""
    if len(shape) != dims + 2:
        raise DicebenchError(f"network '{name}' takes (batch, channels, {dims} spatial dims) input, "
                             f"got shape {tuple(shape)}")
    spatial = tuple(shape[2:])
    if any(s % divisor for s in spatial):
        raise DicebenchError(f"network '{name}': spatial size {list(spatial)} must be divisible by "
                             f"{divisor} (its total down-sampling); choose a patch size that is")
    values = 1
    for s in spatial:
        values *= s // divisor
    if norm_kind == "batch":
        if training:
            values *= shape[0]
        else:
            values = 2
    if values <= 1:
        raise DicebenchError(f"network '{name}': spatial size {list(spatial)} with batch {shape[0]} leaves "
                             f"one value per channel at the bottleneck, which {norm_kind} normalisation "
                             f"cannot normalise; use a patch of at least {2 * divisor} along one axis")
