"""Directions: filter normalization, seeding, Gram-Schmidt, checkpoint and PCA directions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape._params import dot, get_params, norm
from landscape.slices import (
    buffer_direction,
    checkpoint_direction,
    normalize_direction,
    orthogonalize,
    pca_directions,
    project,
    random_direction,
    random_directions,
)


def conv_bn_mlp(dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
        nn.ReLU(),
        nn.Linear(5, 3),
    ).to(dtype)


def rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=1)


def test_filter_norms_equal_weight_filter_norms():
    model = conv_bn_mlp()
    params = get_params(model)
    d = random_direction(model, seed=3)
    for name in ("0.weight", "4.weight", "6.weight"):  # conv and linear layers
        torch.testing.assert_close(rows(d[name]), rows(params[name]), rtol=0, atol=1e-12)
    for name, p in params.items():
        if p.ndim <= 1:  # biases, BN weight and bias: ignored
            assert torch.count_nonzero(d[name]) == 0, name


def test_layer_normalization_matches_whole_tensor_norm():
    model = conv_bn_mlp()
    params = get_params(model)
    d = random_direction(model, seed=1, normalization="layer")
    for name in ("0.weight", "4.weight"):
        assert abs(float(d[name].norm() - params[name].norm())) < 1e-12
        assert not torch.allclose(rows(d[name]), rows(params[name]))


def test_fresh_batchnorm_with_ignore_none_is_finite():
    """A fresh BN has bias exactly 0 and weight 1: no division by zero, zero bias direction."""
    model = conv_bn_mlp()
    bn = model[1]
    assert torch.count_nonzero(bn.bias) == 0
    with torch.no_grad():
        model[0].weight[0].zero_()  # a dead filter: also a zero norm
    for normalization in ("filter", "layer"):
        d = random_direction(model, seed=0, normalization=normalization, ignore="none")
        assert all(torch.isfinite(v).all() for v in d.values())
        assert torch.count_nonzero(d["1.bias"]) == 0
        if normalization == "filter":
            assert torch.count_nonzero(d["0.weight"][0]) == 0
        # 1-D parameters are one filter each: BN weight direction has the norm of ones(4)
        assert abs(float(d["1.weight"].norm()) - 2.0) < 1e-12
        assert torch.count_nonzero(d["0.bias"]) > 0


def test_zero_direction_filter_gives_zero_not_nan():
    d = {"w": torch.zeros(2, 3, dtype=torch.float64)}
    p = {"w": torch.ones(2, 3, dtype=torch.float64)}
    out = normalize_direction(d, p)
    assert torch.equal(out["w"], torch.zeros(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_direction_dtype_device_and_seed(dtype):
    model = conv_bn_mlp(dtype)
    d1 = random_direction(model, seed=7)
    d2 = random_direction(model, seed=7)
    d3 = random_direction(model, seed=8)
    assert list(d1) == [n for n, _ in model.named_parameters()]
    for n, p in model.named_parameters():
        assert d1[n].dtype == p.dtype and d1[n].device == p.device
        assert torch.equal(d1[n], d2[n])
    assert not torch.equal(d1["0.weight"], d3["0.weight"])
    first, _ = random_directions(model, 2, seed=7)
    assert all(torch.equal(first[n], d1[n]) for n in d1)


def test_unknown_options_raise():
    model = conv_bn_mlp()
    with pytest.raises(ValueError, match="unknown normalization 'filtre'"):
        random_direction(model, seed=0, normalization="filtre")
    with pytest.raises(ValueError, match="unknown ignore 'bias'"):
        random_direction(model, seed=0, ignore="bias")
    with pytest.raises(ValueError, match="shape"):
        normalize_direction({"w": torch.zeros(2)}, {"w": torch.zeros(3)})


def test_orthogonalize_projects_out_and_keeps_norm():
    model = conv_bn_mlp()
    d1, d2 = random_directions(model, 2, seed=0, ignore="none")
    o = orthogonalize(d2, d1)
    assert abs(float(dot(o, d1))) < 1e-10 * float(norm(d1) * norm(o))
    assert abs(float(norm(o) - norm(d2))) < 1e-10
    with pytest.raises(ValueError, match="parallel"):
        orthogonalize({n: 2 * v for n, v in d1.items()}, d1)


def test_checkpoint_direction_is_difference():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor(3.0)}
    b = {"w": torch.tensor([0.5, 4.0]), "b": torch.tensor(1.0)}
    d = checkpoint_direction(a, b)
    assert torch.equal(d["w"], torch.tensor([-0.5, 2.0])) and torch.equal(
        d["b"], torch.tensor(-2.0)
    )
    with pytest.raises(ValueError, match="names"):
        checkpoint_direction(a, {"w": b["w"]})


def planar_trajectory(t: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shapes = {"layer.weight": (3, 4), "layer.bias": (3,), "out.weight": (2, 3)}

    def rand():
        return {n: torch.randn(s, generator=g, dtype=torch.float64) for n, s in shapes.items()}

    final, u, v = rand(), rand(), rand()
    alpha = torch.linspace(2.0, 0.0, t, dtype=torch.float64)
    beta = torch.sin(torch.linspace(0.0, 3.0, t, dtype=torch.float64))
    traj = [{n: final[n] + a * u[n] + b * v[n] for n in final} for a, b in zip(alpha, beta)]
    return traj, final, u, v, alpha, beta


def test_pca_plane_explained_variance_and_reconstruction():
    traj, final, *_ = planar_trajectory()
    for center in (True, False):
        dirs, ratios = pca_directions(traj, final, k=2, center=center)
        assert ratios.shape == (2,) and abs(ratios.sum() - 1.0) < 1e-12
        assert ratios[0] >= ratios[1]
        assert abs(float(norm(dirs[0])) - 1.0) < 1e-12 and abs(float(dot(*dirs))) < 1e-12
        coords = project(traj, final, dirs)
        assert coords.shape == (len(traj), 2)
        for theta, (c1, c2) in zip(traj, coords):
            rebuilt = {n: final[n] + c1 * dirs[0][n] + c2 * dirs[1][n] for n in final}
            assert all(torch.allclose(rebuilt[n], theta[n], atol=1e-10) for n in final)


def test_pca_explained_variance_is_the_share_of_squared_singular_values():
    """Rows +-3u and +-v (u, v orthonormal): singular values 3:1, so 9/10 and 1/10 of the
    variance (not 3/4 and 1/4, the shares of the singular values themselves)."""
    q, _ = torch.linalg.qr(torch.randn(8, 2, generator=torch.Generator().manual_seed(1)).double())

    def as_params(vec: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"w": vec[:6].reshape(2, 3), "b": vec[6:]}

    final = as_params(torch.linspace(-1.0, 1.0, 8, dtype=torch.float64))
    u, v = q[:, 0], q[:, 1]
    steps = [3 * u, -3 * u, v, -v]  # mean 0: the same with and without centering
    traj = [{n: final[n] + as_params(step)[n] for n in final} for step in steps]
    for center in (True, False):
        dirs, ratios = pca_directions(traj, final, k=2, center=center)
        np.testing.assert_allclose(ratios, [0.9, 0.1], rtol=1e-12)
        for d, expected in zip(dirs, (u, v)):
            assert abs(abs(float(torch.cat([d["w"].reshape(-1), d["b"]]) @ expected)) - 1) < 1e-12


def test_project_on_non_orthogonal_directions_recovers_coefficients():
    traj, final, u, v, alpha, beta = planar_trajectory()
    coords = project(traj, final, [u, v])
    assert abs(coords[:, 0] - alpha.numpy()).max() < 1e-10
    assert abs(coords[:, 1] - beta.numpy()).max() < 1e-10


def test_pca_refuses_directions_the_trajectory_does_not_span():
    """Two checkpoints, centered: rank 1, so a second 'principal' direction would be an
    arbitrary null vector labelled 0 % of variance."""
    traj, final, *_ = planar_trajectory(t=2)
    with pytest.raises(ValueError, match=r"spans only 1 direction.*at least 3"):
        pca_directions(traj, final, k=2, center=True)
    _, ratios = pca_directions(traj, final, k=1, center=True)
    assert ratios[0] == pytest.approx(1.0, abs=1e-12)
    line = [{n: final[n] + a * traj[0][n] for n in final} for a in (0.5, 1.0, 2.0)]  # collinear
    with pytest.raises(ValueError, match="spans only 1 direction"):
        pca_directions(line, final, k=2, center=False)


def test_orthogonalize_a_zero_or_unit_first_direction_and_any_scale():
    """A zero d1 leaves d2 as it is; a unit d1 is projected out like any other; the result
    scales with d2 down to tiny norms and refuses d2 parallel to d1 up to rounding at any
    scale."""
    d1 = {"w": torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)}
    d2 = {"w": torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64)}
    zero = orthogonalize(d2, {"w": torch.zeros(3, dtype=torch.float64)})
    assert torch.equal(zero["w"], d2["w"])
    unit = orthogonalize(d2, d1)
    torch.testing.assert_close(unit["w"], torch.tensor([0.0, 3.0, 3.0]).double() / 2**0.5)
    for scale in (1e-14, 1e6):
        small = orthogonalize({"w": scale * d2["w"]}, d1)
        torch.testing.assert_close(small["w"], scale * unit["w"], rtol=1e-12, atol=0)
    v = torch.randn(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for scale in (1e-9, 1.0, 1e9):
        with pytest.raises(ValueError, match="parallel"):
            orthogonalize({"w": scale * 3.1 * v}, {"w": v})


def test_checkpoint_and_buffer_directions_are_in_the_first_point_s_dtype():
    """theta_b - theta_a is added to theta_a: in its dtype, whatever theta_b's."""
    a = {"w": torch.tensor([1.0, 2.0])}
    b = {"w": torch.tensor([0.5, 4.25], dtype=torch.float64)}
    d = checkpoint_direction(a, b)
    assert d["w"].dtype == torch.float32 and d["w"].tolist() == [-0.5, 2.25]
    ma, mb = conv_bn_mlp(torch.float32), conv_bn_mlp(torch.float64)
    with torch.no_grad():
        mb[1].running_mean.fill_(0.25)
    bd = buffer_direction(ma, mb)
    assert set(bd) == {"1.running_mean", "1.running_var"}
    assert bd["1.running_mean"].dtype == torch.float32
    assert bd["1.running_mean"].tolist() == [0.25] * 4


def test_differing_names_are_named():
    a = {f"p{i}": torch.zeros(1) for i in range(6)}
    with pytest.raises(ValueError, match=r"differ in names, e\.g\. \['p5'\]$"):
        checkpoint_direction(a, {n: t for n, t in a.items() if n != "p5"})
    with pytest.raises(ValueError, match=r"e\.g\. \['p0', 'p1', 'p2'\]$"):
        checkpoint_direction(a, {"q": torch.zeros(1)})


def test_pca_defaults_sign_and_dtype():
    """Two centred directions by default; each with its largest entry positive; in the
    dtype of ``final`` (float32 here) while the arithmetic is float64 (the same directions
    as from the float64 copy)."""
    traj, final, *_ = planar_trajectory()
    dirs, ratios = pca_directions(traj, final)
    want, want_ratios = pca_directions(traj, final, k=2, center=True)
    assert len(dirs) == 2 and np.array_equal(ratios, want_ratios)
    assert all(torch.equal(a[n], b[n]) for a, b in zip(dirs, want) for n in a)
    uncentred, _ = pca_directions(traj, final, center=False)
    assert not torch.allclose(uncentred[0]["layer.weight"], dirs[0]["layer.weight"])
    for seed in range(4):
        t, f, *_ = planar_trajectory(seed=seed)
        for d in pca_directions(t, f, k=2)[0]:
            flat = torch.cat([v.reshape(-1) for v in d.values()])
            assert flat[flat.abs().argmax()] > 0
    f32 = [{n: v.float() for n, v in p.items()} for p in traj]
    final32 = {n: v.float() for n, v in final.items()}
    d32, r32 = pca_directions(f32, final32)
    as64 = [{n: v.double() for n, v in p.items()} for p in f32]
    d64, r64 = pca_directions(as64, {n: v.double() for n, v in final32.items()})
    np.testing.assert_allclose(r32, r64, rtol=1e-12)
    for a, b in zip(d32, d64):
        assert all(a[n].dtype == torch.float32 for n in a)
        assert all(torch.equal(a[n], b[n].float()) for n in a)


def test_pca_refuses_a_trajectory_that_does_not_move_and_names_the_centering():
    traj, final, *_ = planar_trajectory(t=2)
    with pytest.raises(ValueError, match="does not move"):
        pca_directions([final, final], final)
    with pytest.raises(ValueError, match=r"^the trajectory spans only 1 direction\(s\), 2 asked "
                       r"\(centering removes one\): pass more"):  # fmt: skip
        pca_directions(traj, final, k=2)
    with pytest.raises(ValueError, match=r"^the trajectory spans only 1 direction\(s\), 2 asked: "):
        pca_directions([traj[0], traj[0]], final, k=2, center=False)


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_pca_rank_is_relative_to_the_largest_singular_value(scale):
    """A collinear trajectory spans one direction at any scale: rounding noise in the
    second singular value is measured against the first."""
    _, final, u, *_ = planar_trajectory()
    line = [{n: final[n] + scale * a * u[n] for n in final} for a in (0.5, 1.0, 2.0, 3.5)]
    with pytest.raises(ValueError, match="spans only 1 direction"):
        pca_directions(line, final, k=2, center=False)


def test_project_float32_directions_in_float64():
    traj, final, u, v, *_ = planar_trajectory()
    coords = project(traj, final, [{n: t.float() for n, t in d.items()} for d in (u, v)])
    exact = project(traj, final, [{n: t.float().double() for n, t in d.items()} for d in (u, v)])
    np.testing.assert_allclose(coords, exact, rtol=1e-12)
