"""Simulated misalignments: the rigid matrix, the respiratory field and the warp obey their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.errors import InputError
from petspect.registration.simulate import (move_rigidly, respiratory_field, rigid_matrix,
                                            target_registration_error, warp)
from petspect.volume import Volume


def test_rigid_matrix_is_a_proper_rotation_about_its_centre():
    c = np.array([10.0, -5.0, 30.0])
    m = rigid_matrix((10.0, -20.0, 30.0), (0, 0, 0), c)
    assert np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3)) and np.linalg.det(m[:3, :3]) == pytest.approx(1.0)
    assert np.allclose(m[:3, :3] @ c + m[:3, 3], c)  # the centre stays
    rz = rigid_matrix((0, 0, 90.0))
    assert np.allclose(rz[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_move_rigidly_moves_content_not_voxels():
    v = Volume.centered(torch.arange(60.0).reshape(3, 4, 5), (2.0, 1.0, 1.5))
    m = rigid_matrix((0, 0, 15.0), (3.0, -2.0, 1.0))
    moved = move_rigidly(v, m)
    assert torch.equal(moved.data, v.data)
    k = (1, 2, 3)
    assert np.allclose(moved.voxel_to_world(k), m[:3, :3] @ v.voxel_to_world(k) + m[:3, 3])


def test_respiratory_field_shape_and_profile():
    v = Volume.centered(torch.zeros(20, 16, 16), (5.0, 4.0, 4.0))
    u = respiratory_field(v, amplitude_mm=12.0, width_mm=30.0)
    assert u.shape == (20, 16, 16, 3)
    assert np.abs(u[..., 2]).max() == pytest.approx(12.0, rel=0.05)  # peak at the diaphragm level (grid centre)
    # Gaussian fall-off: the first slice is 9.5 x 5 mm from the centre
    assert np.allclose(u[0, ..., 2], 12.0 * np.exp(-0.5 * (47.5 / 30.0) ** 2))
    assert np.allclose(u[..., 0], 0.0)  # no left-right motion
    assert np.abs(u[..., 1]).max() <= 0.3 * 12.0 + 1e-9


def test_warp_by_a_constant_field_is_a_shift():
    """I(x + u) with u = one voxel along z is the image shifted by one slice (interior exact)."""
    data = torch.rand(10, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = Volume.centered(data, (3.0, 2.0, 2.0))
    u = np.zeros((10, 6, 6, 3))
    u[..., 2] = 3.0  # LPS z = array axis 0 in the axial orientation
    w = warp(v, u)
    assert torch.allclose(w.data[:-1], data[1:])
    lab = v.with_data((data > 0.5).to(torch.int16))
    assert torch.equal(warp(lab, u, mode="nearest").data[:-1], lab.data[1:])
    with pytest.raises(InputError):
        warp(v, u[:-1])


def test_tre_definition():
    assert np.allclose(target_registration_error([[0, 0, 0], [1, 1, 1]], [[3, 4, 0], [1, 1, 1]]), [5.0, 0.0])
    with pytest.raises(InputError):
        target_registration_error([[0, 0, 0]], [[0, 0]])
