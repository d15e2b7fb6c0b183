"""Complex-wavelet structural similarity (CW-SSIM), batched in torch.

CW-SSIM (Wang & Simoncelli 2005; Sampat et al. 2009) compares two images in
the sub-bands of a complex steerable pyramid. This module mirrors the
computation of pyiqa's ``cw_ssim`` metric (itself a port of the reference
MATLAB code ``cwssim_index.m`` built on matlabPyrTools' ``buildSCFpyr``):

1. RGB inputs are converted to the Y channel of YIQ, scaled to [0, 255] and
   rounded to integers; single-channel inputs are used as they are.
2. A complex steerable pyramid is built in the Fourier domain with ``levels``
   band-pass levels of ``orientations`` bands each (raised-cosine radial masks
   in log-frequency, ``cos^(orientations-1)`` angular masks, both evaluated
   through the same look-up tables as matlabPyrTools).
3. Only the coarsest band-pass level (index ``levels``, at 1 / 2**(levels-1)
   of the input resolution) is compared. Per orientation band,
   ``(2 |mean(b1 conj(b2))| + K) / (mean(|b1|^2 + |b2|^2) + K)`` is computed
   over 7x7 sliding windows ("valid" positions only), averaged with a Gaussian
   weight (sigma = band height / 4), then averaged over orientations (and
   channels).

Only that coarsest level is computed, and only the DFT coefficients it needs
(two small matrix products instead of a full FFT): the finer band-pass levels,
the high-pass and the low-pass residual of the full pyramid do not influence
the score.

One deliberate difference: pyiqa adds 1e-12 inside every complex modulus,
which sends the index of flat (zero-energy) content to ~1e6 instead of 1.
Here a tiny constant is added to both numerator and denominator instead, so
the index stays in [0, 1] and flat identical images score 1; on textured
images the two agree to ~1e-8.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cw_ssim"]

# Luma weights of RGB -> YIQ, stored as float32 and widened to float64, as in
# pyiqa (the float32 rounding moves Y by ~1e-8 which can matter for rounding).
_Y_WEIGHTS = (0.299, 0.587, 0.114)
_WINDOW = 7  # side of the sliding window over which CW-SSIM statistics are pooled
_EPS = 1e-12  # keeps flat (zero-energy) regions at a similarity of 1 instead of 0/0


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation with constant extrapolation (``numpy.interp``)."""
    idx = torch.searchsorted(xp, x.reshape(-1), right=True) - 1
    idx = idx.clamp(0, xp.numel() - 2)
    x0, x1 = xp[idx], xp[idx + 1]
    y0, y1 = fp[idx], fp[idx + 1]
    flat_x = x.reshape(-1)
    out = y0 + (flat_x - x0) * (y1 - y0) / (x1 - x0)
    out = torch.where(flat_x <= xp[0], fp[0], out)
    out = torch.where(flat_x >= xp[-1], fp[-1], out)
    return out.reshape(x.shape)


def _log_radius_and_angle(row_freqs: Tensor, col_freqs: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """log2 radius and angle [h, w] (float64) of the DFT grid points with the given integer frequencies.

    Frequencies are normalised so that the Nyquist frequency is 1 (``2 f / size``);
    the DC entry's radius is copied from its left neighbour so that log2 stays finite.
    """
    fy = row_freqs.to(torch.float64) * (2.0 / height)
    fx = col_freqs.to(torch.float64) * (2.0 / width)
    yy, xx = torch.meshgrid(fy, fx, indexing="ij")
    angle = torch.atan2(yy, xx)
    rad = torch.sqrt(xx**2 + yy**2)
    dc_row = int((row_freqs == 0).nonzero()[0])
    dc_col = int((col_freqs == 0).nonzero()[0])
    rad[dc_row, dc_col] = rad[dc_row, dc_col - 1]
    return torch.log2(rad), angle


def _radial_lut() -> tuple[Tensor, Tensor, Tensor]:
    """Raised-cosine transition table: abscissae (log2 radius), high-pass and low-pass values.

    The transition spans one octave, from log2 radius -1 (value 0) to 0 (value 1)
    for the high-pass; the low-pass is its quadrature complement.
    """
    n = 256
    x = math.pi * torch.arange(-n - 1, 2, dtype=torch.float64) / (2 * n)
    y = torch.cos(x) ** 2
    y[0] = y[1]
    y[n + 2] = y[n + 1]
    x = -0.5 + (2.0 / math.pi) * (x + math.pi / 4)
    hi = torch.sqrt(y)
    lo = torch.sqrt((1.0 - hi**2).clamp_min(0.0))
    return x, hi, lo


def _angular_lut(orientations: int) -> tuple[Tensor, Tensor]:
    """Angular mask table: abscissae (radians) and a one-sided ``cos^order`` lobe."""
    lutsize = 1024
    x = math.pi * torch.arange(-(2 * lutsize + 1), lutsize + 2, dtype=torch.float64) / lutsize
    alpha = torch.remainder(x + math.pi, 2 * math.pi) - math.pi
    order = orientations - 1
    const = (2 ** (2 * order)) * math.factorial(order) ** 2 / (orientations * math.factorial(2 * order))
    y = 2 * math.sqrt(const) * torch.cos(x) ** order * (alpha.abs() < math.pi / 2)
    return x, y


def _crop_bounds(size: int) -> tuple[int, int]:
    """Indices [start, end) of the centred low-frequency half of a DFT axis of length ``size``."""
    start = math.ceil((size + 0.5) / 2) - math.ceil((math.ceil((size - 0.5) / 2) + 0.5) / 2)
    return start, start + math.ceil((size - 0.5) / 2)


def _coarsest_band_filters(height: int, width: int, levels: int, orientations: int) -> tuple[Tensor, Tensor, Tensor]:
    """Frequencies and frequency-domain masks of the coarsest band-pass level of the pyramid.

    The pyramid repeatedly keeps the centred low-frequency half of the (fftshift-ed)
    DFT; after ``levels - 1`` such crops, the coarsest level lives on an ``h x w``
    grid of signed integer frequencies, returned as ``row_freqs [h]`` and
    ``col_freqs [w]`` (cycles per image, DC at index ``h // 2``, ``w // 2``).

    ``masks [orientations, h, w]`` (float64) is the product, on that grid, of
    the initial low-pass, the low-passes applied before each crop, the level's
    high-pass and each orientation mask. Since only the final crop survives,
    every mask is evaluated on the final grid only.
    """
    top, left, h, w = 0, 0, height, width
    for _ in range(levels - 1):
        t, b = _crop_bounds(h)
        lft, rgt = _crop_bounds(w)
        top, left, h, w = top + t, left + lft, b - t, rgt - lft
    row_freqs = torch.arange(h) + top - height // 2
    col_freqs = torch.arange(w) + left - width // 2
    log_rad, angle = _log_radius_and_angle(row_freqs, col_freqs, height, width)

    rx, rhi, rlo = _radial_lut()
    radial = _interp(log_rad, rx, rlo)  # initial low-pass (lo0)
    for level in range(1, levels):  # low-pass before each subsampling
        radial = radial * _interp(log_rad, rx - level, rlo)
    radial = radial * _interp(log_rad, rx - levels, rhi)  # band-pass of the coarsest level
    ax, ay = _angular_lut(orientations)
    angular = torch.stack([_interp(angle, ax + math.pi * k / orientations, ay) for k in range(orientations)])
    return row_freqs, col_freqs, angular * radial


def _dft_matrix(freqs: Tensor, size: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts [len(freqs), size] of the forward DFT rows for ``freqs``."""
    n = torch.arange(size)
    phase = torch.remainder(freqs[:, None] * n[None, :], size).to(torch.float64) * (-2.0 * math.pi / size)
    return torch.cos(phase).to(device=device, dtype=dtype), torch.sin(phase).to(device=device, dtype=dtype)


def _partial_dft(img: Tensor, row_freqs: Tensor, col_freqs: Tensor) -> Tensor:
    """2-D DFT of real [N, C, H, W] evaluated only at the given frequencies -> complex [N, C, h, w].

    Two matrix products instead of a full FFT: the coarsest pyramid level needs
    only 1 / 2**(levels-1) of the frequencies along each axis.
    """
    height, width = img.shape[-2:]
    cw_re, cw_im = _dft_matrix(col_freqs, width, img.dtype, img.device)
    ch_re, ch_im = _dft_matrix(row_freqs, height, img.dtype, img.device)
    rows = torch.complex(ch_re @ img, ch_im @ img)  # [N, C, h, W]
    return rows @ torch.complex(cw_re, cw_im).T  # [N, C, h, w]


def _gaussian_window(height: int, width: int, sigma: float) -> Tensor:
    """MATLAB ``fspecial('gaussian', [height, width], sigma)``, float64, sums to 1."""
    ys = torch.arange(height, dtype=torch.float64) - (height - 1) / 2
    xs = torch.arange(width, dtype=torch.float64) - (width - 1) / 2
    g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2.0 * sigma * sigma))
    g = torch.where(g < torch.finfo(torch.float64).eps * g.max(), torch.zeros_like(g), g)
    return g / g.sum()


def _to_luma(x: Tensor) -> Tensor:
    """[N, 3, H, W] in [0, 1] -> [N, 1, H, W] YIQ luma in [0, 255], rounded to integers."""
    w = torch.tensor(_Y_WEIGHTS, dtype=torch.float32).to(device=x.device, dtype=x.dtype)
    n, _, height, width = x.shape
    y = torch.matmul(w, x.reshape(n, 3, height * width))  # [N, H*W]
    return torch.round(y * 255.0).reshape(n, 1, height, width)


def _validate(x: Tensor, y: Tensor, levels: int, orientations: int, guard_band: int) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor):
            raise TypeError(f"Expected {name} to be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] not in (1, 3):
            raise ValueError(
                f"Expected {name} to be a 4-D tensor [N, 3, H, W] or [N, 1, H, W], got shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"Expected {name} to be a floating-point tensor in [0, 1], got {t.dtype}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if levels < 1 or orientations < 1:
        raise ValueError(f"levels and orientations must be >= 1, got {levels} and {orientations}")
    if guard_band < 0:
        raise ValueError(f"guard_band must be >= 0, got {guard_band}")
    min_side = min(x.shape[-2:])
    if levels > math.floor(math.log2(min_side)) - 2:
        raise ValueError(
            f"Images of size {tuple(x.shape[-2:])} are too small for {levels} pyramid levels "
            f"(need min(H, W) >= {2 ** (levels + 2)})"
        )


def _coarsest_bands(img: Tensor, row_freqs: Tensor, col_freqs: Tensor, masks: Tensor, factor: complex) -> Tensor:
    """[N, C, H, W] real -> complex coefficients [N, C, B, h, w] of the coarsest band-pass level."""
    spectrum = _partial_dft(img, row_freqs, col_freqs)
    bands = spectrum.unsqueeze(2) * (masks * factor)
    return torch.fft.ifft2(torch.fft.ifftshift(bands, dim=(-2, -1)))


def cw_ssim(
    x: Tensor,
    y: Tensor,
    *,
    levels: int = 4,
    orientations: int = 8,
    K: float = 0.0,
    guard_band: int = 0,
    y_channel: bool = True,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """CW-SSIM between two batches of images; mirrors pyiqa's ``cw_ssim``.

    Args:
        x, y: [N, 3, H, W] or [N, 1, H, W] floats in [0, 1], same shape, same
            device; min(H, W) >= 2**(levels + 2). The index is symmetric in x, y.
        levels: band-pass levels of the steerable pyramid; the coarsest one
            (at 1 / 2**(levels-1) resolution) is compared.
        orientations: orientation bands per level.
        K: small positive stabilising constant of the CW-SSIM formula (0 as in
            pyiqa; K > 0 makes the index sensitive to the image scale, and RGB
            inputs are compared in the [0, 255] luma scale).
        guard_band: pixels (at input resolution) discarded from each border,
            divided by 2**(levels-1) at the compared level. pyiqa fails for
            values >= 2**(levels-1); here the Gaussian weight is sized to the
            cropped band (its sigma stays band height / 4).
        y_channel: for RGB inputs, compare the rounded YIQ luma in [0, 255]
            (pyiqa's behaviour). If False, each channel is compared as it is
            and the channel scores are averaged. Single-channel inputs are
            always compared as they are.
        dtype: computation dtype (float64 as pyiqa; float32 for devices without
            float64 support).

    Returns:
        [N] scores in [0, 1] (1 for identical images), dtype of ``x``.
    """
    _validate(x, y, levels, orientations, guard_band)
    out_dtype = x.dtype
    x = x.to(dtype)
    y = y.to(dtype)
    if y_channel and x.shape[1] == 3:
        x, y = _to_luma(x), _to_luma(y)

    height, width = x.shape[-2:]
    row_freqs, col_freqs, masks = _coarsest_band_filters(height, width, levels, orientations)
    masks = masks.to(device=x.device, dtype=dtype)
    # (-i)**(orientations-1): makes each band the analytic (complex) filter output
    factor = (1, -1j, -1, 1j)[(orientations - 1) % 4]

    b1 = _coarsest_bands(x, row_freqs, col_freqs, masks, factor)  # [N, C, B, h, w]
    b2 = _coarsest_bands(y, row_freqs, col_freqs, masks, factor)
    band_h, band_w = b1.shape[-2:]
    gb = guard_band // 2 ** (levels - 1)
    if gb > 0:
        b1 = b1[..., gb : band_h - gb, gb : band_w - gb]
        b2 = b2[..., gb : band_h - gb, gb : band_w - gb]
    h, w = b1.shape[-2:]
    if min(h, w) < _WINDOW:
        raise ValueError(
            f"The compared band is {h}x{w} after the guard band, smaller than the {_WINDOW}x{_WINDOW} window"
        )

    n, c, nb = b1.shape[:3]
    corr = (b1 * b2.conj()).reshape(n, c * nb, h, w)
    energy = (b1.abs() ** 2 + b2.abs() ** 2).reshape(n, c * nb, h, w)
    corr_re = F.avg_pool2d(corr.real, _WINDOW, stride=1)
    corr_im = F.avg_pool2d(corr.imag, _WINDOW, stride=1)
    energy = F.avg_pool2d(energy, _WINDOW, stride=1)
    corr_abs = torch.sqrt(corr_re**2 + corr_im**2)
    cssim = (2.0 * corr_abs + K + _EPS) / (energy + K + _EPS)

    weight = _gaussian_window(h - _WINDOW + 1, w - _WINDOW + 1, band_h / 4.0).to(device=x.device, dtype=dtype)
    per_band = (cssim * weight).sum(dim=(-2, -1)).reshape(n, c, nb)
    return per_band.mean(dim=(1, 2)).to(out_dtype)
