"""De-identification of DICOM: the PS3.15 Basic Application Level Confidentiality Profile with keyed pseudonyms.

What is done to each dataset (:func:`anonymise_dataset`), following DICOM PS3.15 Annex E, Table E.1-1, with
the options *Retain Patient Characteristics* (sex, age, weight, height: SUV needs them) and *Retain
Longitudinal Temporal Information with Full Dates* (decay correction needs the times):

- PatientName and PatientID become keyed pseudonyms (``ANON^<16 hex>``, ``ANON-<16 hex>``);
- the identifying attributes of :data:`REMOVE` are removed (at any depth, in sequences too), those of
  :data:`EMPTY` (type 2) emptied;
- every UID that is not a registered DICOM UID (SOP classes, transfer syntaxes) is replaced by
  ``2.25.<decimal of 128 keyed bits>``: the same original UID gives the same new UID wherever it appears
  (study, series, frame of reference, references between instances), so a study stays consistent across
  its files and across runs with the same secret;
- private elements are removed, except the numeric SUV scale factors of Philips (7053,1000)/(7053,1009)
  and their private creator;
- PatientIdentityRemoved = YES, DeidentificationMethod, and the profile's code sequence are set.

Pseudonyms are HMAC-SHA256 of the original value under a secret key, never a plain hash: an unsalted hash
of a medical record number is reversed by trying every number in a fraction of a second. The key is one
the user supplies (a file) or 32 random bytes generated once and stored beside the output with mode 0600
(:func:`secret_for_output`); the same key gives the same pseudonyms, so follow-up studies of one patient
still match, and a different key gives unrelated ones.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petspect.errors import FormatError, InputError

SECRET_SUFFIX = ".petspect-anon-key"
DEIDENTIFICATION_METHOD = ("petspect: DICOM PS3.15 basic profile, retain patient characteristics, retain full "
                           "dates; keyed (HMAC-SHA256) pseudonyms and UIDs")
# PS3.16 CID 7050 codes of the profile and options applied
PROFILE_CODES = (("113100", "Basic Application Confidentiality Profile"),
                 ("113108", "Retain Patient Characteristics Option"),
                 ("113106", "Retain Longitudinal Temporal Information Full Dates Option"))

REMOVE = (
    "PatientBirthTime", "PatientBirthName", "PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation",
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientMotherBirthName", "MilitaryRank",
    "BranchOfService", "MedicalRecordLocator", "PatientComments", "AdditionalPatientHistory", "EthnicGroup",
    "Occupation", "PatientReligiousPreference", "PatientInsurancePlanCodeSequence", "CountryOfResidence",
    "RegionOfResidence", "CurrentPatientLocation", "PatientInstitutionResidence", "ResponsiblePerson",
    "ResponsibleOrganization", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "MedicalAlerts",
    "Allergies", "SpecialNeeds", "PregnancyStatus", "SmokingStatus", "LastMenstrualDate",
    "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers", "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName", "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
    "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "OperatorsName", "OperatorIdentificationSequence",
    "RequestingPhysician", "RequestingService", "ScheduledPerformingPhysicianName", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence", "StationName",
    "DeviceSerialNumber", "DeviceUID", "StudyDescription", "SeriesDescription", "ImageComments", "StudyComments",
    "RequestAttributesSequence", "ContentCreatorName", "AdmissionID", "AdmittingDiagnosesDescription",
    "ReasonForStudy", "RequestedProcedureDescription", "RequestedProcedureID", "PerformedProcedureStepID",
    "PerformedProcedureStepDescription", "PerformedLocation", "ScheduledProcedureStepID", "ProtocolName",
    "AcquisitionComments", "DerivationDescription", "FillerOrderNumberImagingServiceRequest",
    "PlacerOrderNumberImagingServiceRequest", "OrderEnteredBy", "OrderEntererLocation", "TextComments",
    "ReferencedPatientSequence", "ReferencedStudySequence", "PersonName", "PersonAddress",
    "PersonTelephoneNumbers", "VerifyingObserverName", "ReviewerName", "DetectorID", "GantryID",
)
EMPTY = ("PatientBirthDate", "AccessionNumber", "StudyID", "ReferringPhysicianName")
KEEP_PRIVATE = {(0x7053, 0x1000), (0x7053, 0x1009), (0x7053, 0x0010)}  # Philips SUV / activity scale factors


@dataclass(frozen=True)
class AnonymisationKey:
    """The secret behind the keyed pseudonyms (at least 16 bytes)."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise InputError("the anonymisation secret must hold at least 16 bytes (use 32 random bytes)")

    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` for ``purpose`` (name, id, uid), so one value maps differently per purpose."""
        return hmac.new(self.secret, f"{purpose}\0{value}".encode("utf-8"), hashlib.sha256).digest()

    def pseudonym(self, purpose: str, value: str, n_hex: int = 16) -> str:
        return self.digest(purpose, value).hex()[:n_hex].upper()

    def uid(self, original: str) -> str:
        """A new UID under the 2.25 (UUID-derived) root: 128 keyed bits in decimal, at most 44 characters."""
        return "2.25." + str(int.from_bytes(self.digest("uid", original.strip())[:16], "big"))


def read_secret(path: str | os.PathLike) -> AnonymisationKey:
    """A key from a file (its bytes; a hex text file is used as its text)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError("anonymisation secret file not found", path=p)
    return AnonymisationKey(p.read_bytes().strip())


def secret_for_output(out: str | os.PathLike, secret_file: str | os.PathLike | None = None
                      ) -> tuple[AnonymisationKey, Path | None]:
    """The key for an anonymised output: from ``secret_file``, else the one stored beside ``out``, else new.

    A new key (32 random bytes, hex) is written to ``<out><SECRET_SUFFIX>`` next to the output, readable by
    the owner only (0600); keep it private, and pass it again (``--secret-file``) to give the same patient
    the same pseudonym in later outputs. Returns the key and the path of a newly written key file (or None).
    """
    if secret_file is not None:
        return read_secret(secret_file), None
    out_p = Path(out).expanduser().resolve()
    beside = out_p.parent / f"{out_p.name}{SECRET_SUFFIX}"
    if beside.is_file():
        return read_secret(beside), None
    beside.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_hex(32).encode("ascii")
    fd = os.open(beside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(text + b"\n")
    os.chmod(beside, 0o600)
    return AnonymisationKey(text), beside


def _is_registered_uid(value: str) -> bool:
    from pydicom.uid import UID_dictionary

    return value in UID_dictionary


def _walk(ds: Any, key: AnonymisationKey) -> None:
    """Remove, empty and remap in ``ds`` and, recursively, in its sequences."""
    for kw in REMOVE:
        if kw in ds:
            delattr(ds, kw)
    for kw in EMPTY:
        if kw in ds:
            setattr(ds, kw, "")
    for elem in list(ds):
        if elem.tag.is_private:
            if (elem.tag.group, elem.tag.element) not in KEEP_PRIVATE:
                del ds[elem.tag]
            continue
        if elem.VR == "SQ":
            for item in elem.value or []:
                _walk(item, key)
        elif elem.VR == "UI" and elem.value:
            values = elem.value if isinstance(elem.value, list) or hasattr(elem.value, "__iter__") and not \
                isinstance(elem.value, str) else [elem.value]
            new = [str(v) if _is_registered_uid(str(v)) else key.uid(str(v)) for v in values]
            elem.value = new if len(new) > 1 else new[0]
        elif elem.VR == "PN" and elem.value and elem.keyword not in ("PatientName",):
            elem.value = ""  # any other person name left (e.g. in a private-free sequence) is emptied


def anonymise_dataset(ds: Any, key: AnonymisationKey) -> Any:
    """De-identify a pydicom Dataset in place (see the module docstring); returns it."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    original_id = str(getattr(ds, "PatientID", "") or "")
    original_name = str(getattr(ds, "PatientName", "") or "")
    person = original_id or original_name
    _walk(ds, key)
    meta = getattr(ds, "file_meta", None)
    for kw in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle", "ReceivingApplicationEntityTitle"):
        if meta is not None and kw in meta:
            delattr(meta, kw)  # station names of the sender
    if meta is not None and getattr(meta, "MediaStorageSOPInstanceUID", None):
        meta.MediaStorageSOPInstanceUID = getattr(ds, "SOPInstanceUID", None) or key.uid(
            str(meta.MediaStorageSOPInstanceUID))
    for kw in EMPTY:  # type 2 at the top level: present, empty
        setattr(ds, kw, "")
    ds.PatientName = f"ANON^{key.pseudonym('name', person)}"
    ds.PatientID = f"ANON-{key.pseudonym('id', person)}"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD[:64]
    codes = []
    for value, meaning in PROFILE_CODES:
        c = Dataset()
        c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, "DCM", meaning
        codes.append(c)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    return ds


@dataclass
class AnonymisationResult:
    """What :func:`anonymise_folder` did."""

    out: Path
    n_files: int
    skipped: list[str]
    new_secret_file: Path | None


def anonymise_folder(src: str | os.PathLike, out: str | os.PathLike, *, secret_file: str | os.PathLike | None = None,
                     overwrite: bool = False) -> AnonymisationResult:
    """De-identify every DICOM file under ``src`` into the new folder ``out``.

    Files are renamed ``<new SeriesInstanceUID>/<n>.dcm`` (original names often carry the patient's name);
    files that are not DICOM are skipped and listed. ``out`` is written atomically and never holds ``src``.
    """
    from petspect._fileio import check_output_path
    from petspect.io._paths import require_exists

    root = require_exists(src)
    out_p = check_output_path(out, overwrite=overwrite, inputs=[root], kind="anonymised-dicom")
    key, new_file = secret_for_output(out_p, secret_file)
    try:
        count, skipped = _anonymise_files(root, out_p, key)
    except BaseException:
        if new_file is not None:  # a key made for a run that wrote nothing: a rerun must not adopt it unseen
            new_file.unlink(missing_ok=True)
        raise
    return AnonymisationResult(out_p, count, skipped, new_file)


def _anonymise_files(root: Path, out_p: Path, key: AnonymisationKey) -> tuple[int, list[str]]:
    """Write the de-identified copies of the DICOM files under ``root`` to ``out_p``; (count, skipped)."""
    import pydicom

    from petspect._fileio import atomic_dir
    from petspect.io._guard import reading
    from petspect.io._paths import is_dicom_file

    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    skipped, count = [], 0
    counters: dict[str, int] = {}
    with atomic_dir(out_p, kind="anonymised-dicom") as tmp:
        for f in files:
            if not is_dicom_file(f):
                skipped.append(str(f.relative_to(root)) if f != root else f.name)
                continue
            with reading(f, "DICOM file"):
                ds = pydicom.dcmread(f)
                anonymise_dataset(ds, key)
                series = str(getattr(ds, "SeriesInstanceUID", "") or "no-series")
                counters[series] = counters.get(series, 0) + 1
                target = tmp / series / f"{counters[series]:05d}.dcm"
                target.parent.mkdir(exist_ok=True)
                ds.save_as(target, enforce_file_format=False)
            count += 1
        if count == 0:
            raise FormatError("no DICOM files found", path=root)
    return count, skipped
