"""Chest-radiograph-like pictures drawn from soft-edged shapes, for synthetic DX studies.

No patient image is used; seeded jitter and noise make each picture deterministic yet chest-like.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from hilum.samples.chest_views import ViewPosition

BITS_STORED = 12  # pixel values fit in 12 bits, [0, 4095], as on most DX detectors
_MAX_VALUE = (1 << BITS_STORED) - 1
_STRIP_ROWS = 32


def _soft(value: npt.NDArray[np.float32], width: float) -> npt.NDArray[np.float32]:
    """A soft-edged mask: 0 where value <= 0, 1 where value >= width, a linear ramp between."""
    mask: npt.NDArray[np.float32] = np.clip(value * np.float32(1.0 / width), 0.0, 1.0)
    return mask


def _f(value: float) -> np.float32:
    """A float32 scalar, so that arithmetic on float32 arrays stays float32."""
    return np.float32(value)


def chest_pixels(rows: int, columns: int, view: ViewPosition, seed: int) -> npt.NDArray[np.uint16]:
    """A chest-radiograph-like picture: uint16 (rows, columns), values in [0, 4095], bone bright.

    Densities add up as on a log-processed film (air, soft tissue, lungs, mediastinum, bones, noise); seeded.
    """
    rng = np.random.default_rng(seed)
    jitter = [float(v) for v in rng.uniform(-1.0, 1.0, size=8)]
    noise_sigma = _f(0.018 if view is ViewPosition.AP else 0.012)
    # Coordinates in image heights: y from 0 (top) to 1 down a column, x centred along a row.
    # Both stay one-dimensional ((rows, 1) and (1, columns)) until a shape needs both.
    y = (np.arange(rows, dtype=np.float32) / _f(rows))[:, None]
    x = ((np.arange(columns, dtype=np.float32) - _f(columns / 2)) / _f(rows))[None, :]
    x = x + _f(0.008 * jitter[0])  # the patient is never perfectly centred

    pixels = np.empty((rows, columns), dtype=np.uint16)
    # Drawn in strips of rows: the intermediate arrays stay small, which makes drawing fast.
    for start in range(0, rows, _STRIP_ROWS):
        strip = slice(start, start + _STRIP_ROWS)
        if view is ViewPosition.LL:
            image = _lateral(x, y[strip], jitter)
        else:
            image = _frontal(x, y[strip], jitter, portable=view is ViewPosition.AP)
        image += rng.standard_normal(image.shape, dtype=np.float32) * noise_sigma
        np.clip(image, 0.0, 1.0, out=image)
        pixels[strip] = np.rint(image * _f(_MAX_VALUE))
    return pixels


def _frontal(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.float32], jitter: list[float], portable: bool
) -> npt.NDArray[np.float32]:
    """Density (float32, about 0 to 1) of a frontal PA or AP chest; image left is the patient's right."""
    ax = np.abs(x)
    # Torso with rounded shoulders, thicker (denser) in the midline; a neck above it.
    torso = _soft(_f(1.0) - (x / _f(0.37)) ** 6 - ((y - _f(0.64)) / _f(0.6)) ** 6, 0.2)
    thickness = _f(0.3) + _f(0.14) * np.sqrt(np.clip(_f(1.0) - (x / _f(0.37)) ** 2, 0.0, 1.0))
    neck = _soft(_f(0.075) - ax, 0.02) * _soft(_f(0.2) - y, 0.05)
    image: npt.NDArray[np.float32] = _f(0.05) + thickness * np.maximum(torso, neck)

    # Hemidiaphragm domes, highest at mid-lung; the right (image left) one sits a little higher,
    # and lung volumes are lower on a supine portable film.
    lift = 0.05 if portable else 0.0
    dome = (
        np.where(x < 0, _f(0.655 - lift), _f(0.675 - lift))
        + _f(0.01 * jitter[1])
        + _f(3.0) * (ax - _f(0.14)) ** 2
    )
    below = _soft(y - dome, 0.012)
    image += _f(0.12) * below * torso  # liver and bowel below the diaphragm

    # Lungs narrow at the apex and widen towards the costophrenic angles; the domes cut them below.
    widening = _f(0.6) + _f(0.4) * np.clip((y - _f(0.15)) / _f(0.4), 0.0, 1.0)
    half_width = _f(0.115 + 0.006 * jitter[3]) * widening
    cy, half_height = _f(0.5), _f(0.36 + 0.01 * jitter[2])
    lung_centre = _f(0.15) + _f(0.04) * (widening - _f(1.0))
    lungs = _soft(_f(1.0) - ((ax - lung_centre) / half_width) ** 2 - ((y - cy) / half_height) ** 4, 0.35)
    lungs *= _f(1.0) - below

    # Heart, leaning to the patient's left (image right), larger on a portable AP; the mediastinum.
    heart_width = (0.15 if portable else 0.13) + 0.008 * jitter[4]
    heart_y = 0.625 - lift  # its lower part lies behind the diaphragm, as on a real film
    heart = _soft(
        _f(1.0) - ((x - _f(0.045)) / _f(heart_width)) ** 2 - ((y - _f(heart_y)) / _f(0.12)) ** 2, 0.3
    )
    mediastinum = np.maximum(_soft(_f(0.065) - ax, 0.03) * _soft(y - _f(0.12), 0.05), heart)

    # Vessels branch out from the hila: denser near them, a fine texture everywhere in the lungs.
    hila = np.exp(-(((ax - _f(0.07)) / _f(0.07)) ** 2)) * np.exp(-(((y - _f(0.47)) / _f(0.12)) ** 2))
    texture = np.cos(_f(95.0) * x + _f(jitter[6])) * np.cos(_f(70.0) * y + _f(jitter[7]))
    lung_density = _f(0.3) - _f(0.15) * hila - _f(0.025) * texture - _f(0.05) * (y - _f(0.3))
    image -= lungs * lung_density * (_f(1.0) - _f(0.9) * mediastinum)
    image += _f(0.2) * mediastinum * (_f(1.0) - below)

    # Spine with vertebral bodies, seen through the mediastinum.
    vertebrae = _f(0.75) + _f(0.25) * np.cos(_f(2 * math.pi / 0.036) * y) ** 2
    image += _f(0.12) * (_soft(_f(0.026) - ax, 0.008) * vertebrae * _soft(y - _f(0.05), 0.05))

    # Ribs over the thorax: posterior arcs falling away laterally, fainter anterior ones falling medially.
    thorax = _soft(_f(0.3) - ax, 0.03) * _soft(y - _f(0.13), 0.02) * _soft(ax - _f(0.03), 0.02)
    thorax = thorax * _soft(dome + _f(0.04) - y, 0.03)
    posterior = _bands(y, -_f(1.6) * (ax - _f(0.05)) ** 2, 0.06)
    anterior = _bands(y, _f(0.5) * ax, 0.07)
    image += _f(0.1) * (posterior + _f(0.4) * anterior) * thorax

    # Clavicles, sloping up from the sternal notch towards the shoulders.
    clavicle_line = _f(0.16 + 0.005 * jitter[5]) - _f(0.2) * (ax - _f(0.03))
    clavicles = _soft(_f(0.009) - np.abs(y - clavicle_line), 0.004)
    image += _f(0.16) * clavicles * (_soft(_f(0.25) - ax, 0.02) * _soft(ax - _f(0.02), 0.01))
    if portable:
        # Scapulae project over the lateral lung fields when the arms cannot be moved away.
        scapulae = _soft(_f(1.0) - ((ax - _f(0.27)) / _f(0.06)) ** 2 - ((y - _f(0.3)) / _f(0.14)) ** 2, 0.5)
        image += _f(0.06) * scapulae * torso
    return image


def _bands(
    y: npt.NDArray[np.float32], shift: npt.NDArray[np.float32], period: float
) -> npt.NDArray[np.float32]:
    """Thin bright bands along the curves y + shift(x) = k * period, as a (rows, columns) array in [0, 1].

    cos(w(y + s)) is expanded as cos(wy)cos(ws) - sin(wy)sin(ws), so only one-dimensional
    cosines are evaluated; that keeps rib drawing fast on full-size images.
    """
    w = _f(2 * math.pi / period)
    wave: npt.NDArray[np.float32] = np.cos(w * y) * np.cos(w * shift) - np.sin(w * y) * np.sin(w * shift)
    np.clip(wave, 0.0, 1.0, out=wave)
    np.square(wave, out=wave)
    np.square(wave, out=wave)
    return wave


def _lateral(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.float32], jitter: list[float]
) -> npt.NDArray[np.float32]:
    """Density (float32, about 0 to 1) of a left lateral chest; anterior is image left, posterior right."""
    torso = _soft(_f(1.0) - (x / _f(0.29)) ** 6 - ((y - _f(0.6)) / _f(0.58)) ** 6, 0.2)
    image: npt.NDArray[np.float32] = _f(0.05) + _f(0.47) * torso
    dome = _f(0.66 + 0.01 * jitter[1]) + _f(1.5) * x**2 - _f(0.1) * x
    below = _soft(y - dome, 0.012)
    image += _f(0.1) * below * torso
    lung = _soft(
        _f(1.0) - ((x - _f(0.02)) / _f(0.21)) ** 2 - ((y - _f(0.47)) / _f(0.33 + 0.01 * jitter[2])) ** 4, 0.3
    )
    lung *= _f(1.0) - below
    heart = _soft(
        _f(1.0) - ((x + _f(0.08)) / _f(0.12 + 0.006 * jitter[4])) ** 2 - ((y - _f(0.62)) / _f(0.12)) ** 2, 0.4
    )
    texture = np.cos(_f(80.0) * x + _f(jitter[6])) * np.cos(_f(70.0) * y + _f(jitter[7]))
    image -= lung * (_f(0.25) - _f(0.02) * texture) * (_f(1.0) - _f(0.7) * heart)
    image += _f(0.1) * heart
    # Thoracic spine posteriorly, with vertebral bodies; the sternum anteriorly.
    vertebrae = _f(0.6) + _f(0.4) * np.cos(_f(2 * math.pi / 0.036) * y) ** 2
    spine = _soft(_f(0.03) - np.abs(x - _f(0.19) + _f(0.06) * y), 0.012)
    image += _f(0.1) * spine * vertebrae * torso
    sternum = _soft(_f(0.008) - np.abs(x + _f(0.22) - _f(0.05) * y), 0.004)
    image += _f(0.08) * sternum * (_soft(y - _f(0.18), 0.02) * _soft(_f(0.55) - y, 0.02))
    image += _f(0.05) * _bands(y, _f(0.35) * x, 0.06) * lung
    return image
