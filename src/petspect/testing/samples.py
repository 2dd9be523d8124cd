"""Small valid inputs of every format petspect reads: the seed corpus of the fuzzer (:mod:`.fuzz`).

Each builder writes one sample into a folder and returns its path (a file, or a folder for DICOM
series, model and acquisition folders). Sizes are tiny (a few kB) so that thousands of mutated copies
can be read in minutes. The NM TOMO projections and the RT Structure Set are built with pydicom alone
(petspect writes neither); everything else goes through petspect's own writers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from petspect.volume import Volume

F18_HALF_LIFE_S = 6586.2  # 109.77 min (REFERENCE.md)


def _pet_volume(shape=(3, 6, 5)) -> Volume:
    g = torch.Generator().manual_seed(7)
    data = torch.rand(shape, generator=g, dtype=torch.float32) * 5000.0
    return Volume.centered(data, (3.0, 2.0, 2.5), unit="Bq/mL", modality="PT",
                           meta={"suv_factors": {"bw": 1.0e-4}, "corrected_image": ["ATTN", "DECY"]})


def nifti(folder: Path, *, gz: bool = False) -> Path:
    """A PET volume as ``pet.nii`` (``pet.nii.gz`` with ``gz``)."""
    from petspect.io import save

    return save(_pet_volume(), folder / ("pet.nii.gz" if gz else "pet.nii"))


def interfile_image(folder: Path) -> Path:
    """A PET volume as Interfile ``pet.hv`` + ``pet.v``."""
    from petspect.io import save

    return save(_pet_volume(), folder / "pet.hv")


def _projections():
    from petspect.geometry.spect_data import EnergyWindow, SpectProjections

    g = torch.Generator().manual_seed(3)
    counts = torch.poisson(torch.full((2, 4, 3, 5), 20.0), generator=g)
    return SpectProjections(counts=counts, angles_deg=torch.arange(4) * 90.0, radius_mm=torch.full((4,), 200.0),
                            pixel_spacing_mm=(4.4, 4.4),
                            energy_windows=[EnergyWindow("EM", 126.0, 154.0), EnergyWindow("SC", 110.0, 126.0)],
                            frame_duration_s=20.0, nuclide="Tc-99m")


def interfile_projections(folder: Path) -> Path:
    """SPECT projections as Interfile ``proj.hs`` + ``proj.s``."""
    from petspect.io.interfile import write_interfile_projections

    return write_interfile_projections(_projections(), folder / "proj.hs")


def dicom_pet(folder: Path) -> Path:
    """A 3-slice PET series (Bq/mL, with the patient and radiopharmaceutical facts SUV needs)."""
    from petspect.io.dicom_write import write_dicom_series

    out = folder / "pet_dcm"
    write_dicom_series(_pet_volume(), out, patient={"name": "Doe^Jane", "id": "MRN-123456", "sex": "F",
                                                    "weight_kg": 70.0, "size_m": 1.7, "birth_date": "19600101"},
                       radiopharmaceutical={"total_dose_bq": 3.7e8, "half_life_s": F18_HALF_LIFE_S,
                                            "start_datetime": "20240102090000", "scan_datetime": "20240102100000"})
    return out


def dicom_ct(folder: Path) -> Path:
    """A 3-slice CT series (HU)."""
    from petspect.io.dicom_write import write_dicom_series

    vol = _pet_volume()
    ct = Volume(torch.round(vol.data / 5.0 - 1000.0), vol.spacing_mm, vol.origin_mm, vol.direction, unit="HU",
                modality="CT")
    out = folder / "ct_dcm"
    write_dicom_series(ct, out)
    return out


def dicom_nm_recon(folder: Path) -> Path:
    """An NM RECON TOMO multi-frame instance (counts)."""
    from petspect.io.dicom_write import write_dicom_series

    vol = _pet_volume()
    out = folder / "nm_dcm"
    write_dicom_series(Volume(vol.data, vol.spacing_mm, vol.origin_mm, vol.direction, unit="counts", modality="NM"),
                       out)
    return out


def _base_dataset(sop_class: str, modality: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^John", "MRN-654321", "19550505"
    ds.StudyDate = ds.SeriesDate = "20240102"
    ds.StudyTime = ds.SeriesTime = "100000"
    return ds


def dicom_nm_tomo(folder: Path) -> Path:
    """A single-head NM TOMO instance: 2 energy windows x 4 views of 3 x 5 pixels."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = _base_dataset("1.2.840.10008.5.1.4.1.1.20", "NM")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    n_win, n_views = 2, 4
    frames = np.stack([np.full((3, 5), 10 * w + v + 1, dtype=np.uint16) for w in range(n_win) for v in range(n_views)])
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.Rows, ds.Columns = 3, 5
    ds.NumberOfFrames = len(frames)
    ds.PixelData = frames.tobytes()
    ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540050, 0x00540090]
    ds.EnergyWindowVector = [w + 1 for w in range(n_win) for _ in range(n_views)]
    ds.DetectorVector = [1] * len(frames)
    ds.RotationVector = [1] * len(frames)
    ds.AngularViewVector = [v + 1 for _ in range(n_win) for v in range(n_views)]
    ds.NumberOfEnergyWindows, ds.NumberOfDetectors, ds.NumberOfRotations = n_win, 1, 1
    ds.PixelSpacing = [4.4, 4.4]
    items = []
    for name, lo, hi in (("EM", 126.0, 154.0), ("SC", 110.0, 126.0)):
        rng, item = Dataset(), Dataset()
        rng.EnergyWindowLowerLimit, rng.EnergyWindowUpperLimit = lo, hi
        item.EnergyWindowName, item.EnergyWindowRangeSequence = name, Sequence([rng])
        items.append(item)
    ds.EnergyWindowInformationSequence = Sequence(items)
    det = Dataset()
    det.StartAngle, det.RadialPosition = 0.0, 200.0
    ds.DetectorInformationSequence = Sequence([det])
    rot = Dataset()
    rot.StartAngle, rot.AngularStep, rot.RotationDirection = 0.0, 90.0, "CW"
    rot.NumberOfFramesInRotation, rot.ActualFrameDuration, rot.ScanArc = n_views, 20000, 360
    ds.RotationInformationSequence = Sequence([rot])
    out = folder / "nm_tomo.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out


def reference_volume() -> Volume:
    """The grid the RT Structure Set sample is drawn on."""
    return _pet_volume()


def dicom_rtstruct(folder: Path) -> Path:
    """An RT Structure Set with one closed contour per slice of :func:`reference_volume`."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ref = reference_volume()
    ds = _base_dataset("1.2.840.10008.5.1.4.1.1.481.3", "RTSTRUCT")
    roi = Dataset()
    roi.ROINumber, roi.ROIName = 1, "lesion"
    contours = []
    for k in range(ref.shape[0]):
        z = float(ref.voxel_to_world((k, 0, 0))[2])
        t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        pts = np.stack([3.0 * np.cos(t), 3.0 * np.sin(t), np.full(12, z)], axis=1)
        c = Dataset()
        c.ContourGeometricType, c.NumberOfContourPoints = "CLOSED_PLANAR", len(pts)
        c.ContourData = [round(float(v), 4) for v in pts.reshape(-1)]
        contours.append(c)
    item = Dataset()
    item.ReferencedROINumber, item.ContourSequence = 1, Sequence(contours)
    ds.StructureSetROISequence, ds.ROIContourSequence = Sequence([roi]), Sequence([item])
    out = folder / "rtstruct.dcm"
    ds.save_as(out, enforce_file_format=True)
    return out


def model_folder(folder: Path) -> Path:
    """A tiny 2D residual denoiser saved as a petspect model folder."""
    from petspect.train.model_io import save_model
    from petspect.train.normalization import normalization_from_dict

    spec = {"name": "resnet", "spatial_dims": 2, "in_channels": 1, "out_channels": 1, "channels": [4],
            "kwargs": {"n_blocks": 1}}
    from petspect.train.model_io import build_from_spec

    net = build_from_spec(spec)
    g = torch.Generator().manual_seed(0)  # deterministic weights (the files are the same on every run)
    with torch.no_grad():
        for prm in net.parameters():
            prm.copy_(torch.randn(prm.shape, generator=g) * 0.1)
    norm = normalization_from_dict({"kind": "suv_scaling", "factor": 5000.0, "unit": "Bq/mL"})
    out = folder / "model"
    save_model(out, net, network_spec=spec,
               data={"mode": "2d", "n_slices": 1, "input_key": "recon_d010_osem_ac", "extra_keys": [],
                     "target_key": "recon_d100_osem_ac", "patch_size": [16, 16]},
               input_normalizations=[norm], target_normalization=norm, training={"epochs": 1},
               card={"data": {"method": "resnet"}})
    return out


def dataset_folder(folder: Path) -> Path:
    """A two-case dataset in petspect's layout (``petspect dataset import`` of tiny NIfTI cases)."""
    from petspect.io import save
    from petspect.simulate.importer import import_cases

    g = torch.Generator().manual_seed(5)
    for case in ("p1", "p2"):
        ref = Volume.centered(torch.rand(3, 6, 6, generator=g) * 1000.0, (3.0, 2.0, 2.0), unit="Bq/mL", modality="PT")
        save(ref, folder / "cases" / case / "recon_d100_osem_ac.nii.gz")
        save(ref.with_data(ref.data * 0.9), folder / "cases" / case / "recon_d010_osem_ac.nii.gz")
    import_cases(folder / "cases", folder / "dataset", reference_key="recon_d100_osem_ac", train=0.5,
                 validation=0.0, show_progress=False)
    return folder / "dataset"


def acquisition_folder(folder: Path) -> Path:
    """A tiny SPECT acquisition folder (``petspect project`` output)."""
    from petspect.simulate.acquisition import save_acquisition, simulate_acquisition

    act = Volume.centered(torch.ones(4, 8, 8) * 1000.0, (4.0, 4.0, 4.0), unit="Bq/mL", modality="NM")
    data = simulate_acquisition(act, "spect-lehr", n_counts=1e4, seed=0, n_views=4)
    return save_acquisition(data, folder / "acq")
