"""BK-Core: resolvent diagonal vs dense inverses, exact gradients, causality, N = 65,536."""

import pytest
import torch

from deepobs.errors import ConfigurationError
from deepobs.models.bk_core import (BKCore, METHODS, left_ratios_parallel, left_ratios_sequential,
                                    linear_recurrence, resolvent_diagonal)

Z = 0.3 + 0.8j


@pytest.fixture(autouse=True)
def single_thread():
    """Small tensors: one thread is faster, and much faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_tridiagonal(batch, n, seed, dtype=torch.float64):
    """Diagonal around −2 and off-diagonals ≠ 1 (unequal, of both signs below)."""
    generator = torch.Generator().manual_seed(seed)
    diag = torch.randn(batch, n, generator=generator, dtype=dtype) - 2.0
    upper = torch.rand(batch, n - 1, generator=generator, dtype=dtype) + 0.5
    lower = torch.randn(batch, n - 1, generator=generator, dtype=dtype)
    return diag, upper, lower


def dense_matrix(diag, upper, lower, z):
    matrix = torch.diag_embed(diag.to(torch.complex128) - z)
    if diag.shape[-1] > 1:
        matrix = matrix + torch.diag_embed(upper.to(torch.complex128), 1)
        matrix = matrix + torch.diag_embed(lower.to(torch.complex128), -1)
    return matrix


def dense_diagonal(diag, upper, lower, z, causal):
    """Diagonal of the inverse (causal: last diagonal entry of each leading block)."""
    matrix = dense_matrix(diag, upper, lower, z)
    if not causal:
        return torch.diagonal(torch.linalg.inv(matrix), dim1=-2, dim2=-1)
    # Leading block k, padded with an identity (block diagonal), for every k at once.
    n = diag.shape[-1]
    blocks = matrix.unsqueeze(-3).repeat_interleave(n, dim=-3)
    index = torch.arange(n)
    outside = (index.view(n, 1, 1) < index.view(1, n, 1)) | (index.view(n, 1, 1) < index.view(1, 1, n))
    eye = torch.eye(n, dtype=matrix.dtype).expand(n, n, n)
    blocks = torch.where(outside, eye, blocks)
    inverses = torch.linalg.inv(blocks)
    return inverses[..., index, index, index]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n", [1, 2, 8, 64])
def test_matches_dense_inverse_in_float64(n, causal, method):
    diag, upper, lower = random_tridiagonal(3, n, seed=n)
    result = resolvent_diagonal(diag, upper, lower, Z, causal=causal, method=method)
    expected = dense_diagonal(diag, upper, lower, Z, causal)
    assert result.dtype == torch.complex128 and result.shape == (3, n)
    torch.testing.assert_close(result, expected, rtol=1e-11, atol=1e-12)


def test_symmetric_default_and_scalar_off_diagonals():
    diag, upper, _ = random_tridiagonal(2, 10, seed=3)
    symmetric = resolvent_diagonal(diag, upper, None, Z)
    torch.testing.assert_close(symmetric, dense_diagonal(diag, upper, upper, Z, False))
    laplacian = resolvent_diagonal(diag, 1.0, None, 1j)
    ones = torch.ones(2, 9, dtype=torch.float64)
    torch.testing.assert_close(laplacian, dense_diagonal(diag, ones, ones, 1j, False))
    # Only the products b_k·c_k matter.
    torch.testing.assert_close(resolvent_diagonal(diag, 2 * upper, upper / 2, Z),
                               resolvent_diagonal(diag, upper, upper, Z))


def test_full_diagonal_bounded_by_inverse_imaginary_shift():
    """For real symmetric H: Im G_kk > 0 and |G_kk| ≤ 1/Im z (reference §1.4)."""
    potential = torch.randn(4, 200, dtype=torch.float64).clamp(-3, 3)
    for causal in (False, True):
        result = BKCore(1j, causal=causal)(potential)
        assert (result.imag > 0).all() and result.abs().max() <= 1.0
        assert result.abs().min() >= 1 / 50


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_exact_path(causal, method):
    diag, upper, lower = random_tridiagonal(2, 7, seed=11)
    inputs = [t.clone().requires_grad_() for t in (diag, upper, lower)]
    shift = torch.tensor(Z, dtype=torch.complex128, requires_grad=True)

    def function(d, u, l, z):
        return resolvent_diagonal(d, u, l, z, causal=causal, method=method)

    assert torch.autograd.gradcheck(function, (*inputs, shift), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_sequential_and_parallel_give_the_same_numbers_and_gradients():
    diag, upper, lower = random_tridiagonal(3, 33, seed=5)
    upstream = torch.randn(3, 33, dtype=torch.complex128)
    results = {}
    for method in METHODS:
        leaf = diag.clone().requires_grad_()
        value = resolvent_diagonal(leaf, upper, lower, Z, method=method)
        (value * upstream.conj()).real.sum().backward()
        results[method] = (value.detach(), leaf.grad)
    torch.testing.assert_close(results["sequential"], results["parallel"], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 23, 64])
def test_chunked_scan_matches_the_recursion(chunk_size):
    diag, upper, lower = random_tridiagonal(2, 23, seed=9)
    shifted = diag.to(torch.complex128) - Z
    products = (upper * lower).to(torch.complex128)
    torch.testing.assert_close(left_ratios_parallel(shifted, products, chunk_size),
                               left_ratios_sequential(shifted, products), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("n", [1, 2, 7, 16, 33])
def test_linear_recurrence_of_the_adjoint_scan(n):
    generator = torch.Generator().manual_seed(n)
    coefficients = torch.randn(2, n - 1, generator=generator, dtype=torch.complex128)
    inputs = torch.randn(2, n, generator=generator, dtype=torch.complex128)
    expected = [inputs[:, 0]]
    for j in range(1, n):
        expected.append(coefficients[:, j - 1] * expected[-1] + inputs[:, j])
    torch.testing.assert_close(linear_recurrence(coefficients, inputs), torch.stack(expected, -1))


@pytest.mark.parametrize("method", METHODS)
def test_causal_mode_is_causal_bit_for_bit(method):
    potential = torch.randn(2, 40)
    changed = potential.clone()
    changed[:, 25] += 1.5
    before = BKCore(causal=True, method=method)(potential)
    after = BKCore(causal=True, method=method)(changed)
    assert torch.equal(before[:, :25], after[:, :25])
    assert (before[:, 25] != after[:, 25]).all()
    # The two-sided diagonal sees the future (the leak of the original model).
    full_before = BKCore(causal=False, method=method)(potential)
    full_after = BKCore(causal=False, method=method)(changed)
    assert (full_before[:, :25] != full_after[:, :25]).any()


def test_ratio_recursion_is_the_continuant_ratio_and_the_scan_matches_it():
    """gL_k = θ_{k−1}/θ_k with the classical continuants, for a short sequence."""
    diag, upper, lower = random_tridiagonal(1, 12, seed=7)
    shifted = diag.to(torch.complex128) - Z
    products = (upper * lower).to(torch.complex128)
    theta = [torch.ones_like(shifted[..., 0]), shifted[..., 0]]
    for k in range(1, 12):
        theta.append(shifted[..., k] * theta[-1] - products[..., k - 1] * theta[-2])
    ratios = torch.stack([theta[k] / theta[k + 1] for k in range(12)], -1)
    torch.testing.assert_close(left_ratios_sequential(shifted, products), ratios)
    torch.testing.assert_close(left_ratios_parallel(shifted, products), ratios)


def test_no_overflow_at_65536_in_float32_with_finite_gradients():
    n = 65_536
    generator = torch.Generator().manual_seed(0)
    potential = torch.randn(2, n, generator=generator).clamp(-3, 3)
    reference = BKCore(causal=True, method="sequential")(potential.double())
    for causal in (True, False):
        leaf = potential.clone().requires_grad_()
        result = BKCore(causal=causal, method="parallel")(leaf)
        assert result.dtype == torch.complex64
        assert torch.isfinite(torch.view_as_real(result)).all()
        assert result.abs().max() <= 1.0 + 1e-5
        torch.view_as_real(result).sum().backward()
        assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().max() > 0
        if causal:
            assert (result.to(torch.complex128) - reference).abs().max() < 1e-5


@pytest.mark.slow
def test_sequential_float32_at_65536_with_finite_gradients():
    leaf = torch.randn(1, 65_536).clamp(-3, 3).requires_grad_()
    result = BKCore(causal=True, method="sequential")(leaf)
    torch.view_as_real(result).sum().backward()
    assert torch.isfinite(torch.view_as_real(result)).all() and torch.isfinite(leaf.grad).all()


def test_hybrid_gradient_diagonal_term_on_a_diagonal_matrix():
    """Zero off-diagonals: ∂G_kk/∂a_k = −G_kk² exactly, so the hybrid gradient with α = 0
    is −Re(conj(g)·G²) and equals the exact gradient, in both modes."""
    generator = torch.Generator().manual_seed(2)
    diag = torch.randn(2, 9, generator=generator, dtype=torch.float64)
    upstream = torch.randn(2, 9, generator=generator, dtype=torch.complex128)
    for causal in (False, True):
        grads = {}
        for gradient in ("exact", "hybrid"):
            leaf = diag.clone().requires_grad_()
            value = resolvent_diagonal(leaf, 0.0, None, Z, causal=causal, gradient=gradient)
            value.backward(upstream)
            grads[gradient] = leaf.grad
        green = 1.0 / (diag - Z)
        formula = -(upstream.conj() * green**2).real
        torch.testing.assert_close(grads["hybrid"], formula)
        torch.testing.assert_close(grads["exact"], formula)


def test_hybrid_gradient_blend_is_per_module_and_approximate():
    generator = torch.Generator().manual_seed(4)
    potential = torch.randn(1, 20, generator=generator, dtype=torch.float64)
    upstream = torch.randn(1, 20, generator=generator, dtype=torch.complex128)

    def gradient_of(core):
        leaf = potential.clone().requires_grad_()
        core(leaf).backward(upstream)
        return leaf.grad

    exact = gradient_of(BKCore(causal=False))
    diagonal_only = gradient_of(BKCore(causal=False, gradient="hybrid"))
    heuristic = gradient_of(BKCore(causal=False, gradient="hybrid", grad_blend=1.0))
    half = gradient_of(BKCore(causal=False, gradient="hybrid", grad_blend=0.5))
    green = BKCore(causal=False)(potential).detach()
    torch.testing.assert_close(diagonal_only, -(upstream.conj() * green**2).real)
    torch.testing.assert_close(heuristic, -(upstream.conj() / green**2).real)
    torch.testing.assert_close(half, 0.5 * diagonal_only + 0.5 * heuristic)
    # With the Laplacian's off-diagonals the diagonal term is only an approximation.
    assert not torch.allclose(diagonal_only, exact, atol=1e-3)
    cosine = torch.nn.functional.cosine_similarity(diagonal_only, exact, dim=-1)
    assert cosine.item() > 0.5


def test_bad_arguments_are_rejected():
    diag = torch.zeros(2, 5)
    with pytest.raises(ConfigurationError, match="method must be one of sequential, parallel"):
        resolvent_diagonal(diag, method="fast")
    with pytest.raises(ConfigurationError, match="gradient must be one of exact, hybrid"):
        BKCore(gradient="analytic")
    with pytest.raises(ConfigurationError, match="N−1 = 4"):
        resolvent_diagonal(diag, torch.ones(5))
    with pytest.raises(ConfigurationError, match="grad_blend must be in"):
        BKCore(gradient="hybrid", grad_blend=1.5)
    with pytest.raises(ConfigurationError, match="needs gradient='hybrid'"):
        BKCore(grad_blend=0.5)
