#!/usr/bin/env python3
"""Build the derived DICOM test files in testdata/derived/ (and two bad/ inputs).

Each derived file starts from a real sample already committed in testdata/dicom/
and injects clearly FAKE PHI that tests can search for in de-identified output.

Deterministic: no clocks, no randomness. Re-running with the same pydicom
version (3.0.x; the committed files were made with 3.0.2) reproduces every
file byte for byte.

    python3 testdata/make_derived.py          # (re)write the files
    python3 testdata/make_derived.py --check  # rebuild in memory, compare, exit 1 on drift
"""

import io
import sys
import uuid
from pathlib import Path

import pydicom
import pydicom.config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

if int(pydicom.__version__.split(".")[0]) != 3:
    sys.exit(f"needs pydicom 3.x, found {pydicom.__version__}")

HERE = Path(__file__).resolve().parent
SRC = HERE / "dicom"
OUT = HERE / "derived"
BAD = HERE / "bad"

# The fake PHI. Keep in sync with derived/expected_phi.txt (written below).
NAME = "DOE^JOHN^Q"
PID = "PID-SECRET-4711"
BIRTH = "19610704"
ACCESSION = "ACC-99887766"
INSTITUTION = "St. Example Hospital"
PHYSICIAN = "HOUSE^GREGORY"
FREE_TEXT = f"Seen by Dr. {PHYSICIAN} for {NAME}"
LATIN1_NAME = "MÜLLER^JÜRGEN"
LATIN1_INSTITUTION = "Klinikum Müllerstraße"

PRIVATE_CREATOR = "ACME PHI"
# Retired "Detached Study Management SOP Class", the usual class in ReferencedStudySequence.
STUDY_REF_CLASS = "1.2.840.10008.3.1.2.3.1"


def load(name):
    return pydicom.dcmread(SRC / name)


def set_core_phi(ds):
    ds.PatientName = NAME
    ds.PatientID = PID
    ds.PatientBirthDate = BIRTH
    ds.AccessionNumber = ACCESSION
    ds.InstitutionName = INSTITUTION
    ds.ReferringPhysicianName = PHYSICIAN


def item(**kw):
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def ref_uid(ct):
    """SOPInstanceUID of phi_nested_ref.dcm: the CT's own UID + '.2'."""
    return ct.SOPInstanceUID + ".2"


def make_phi_nested():
    ds = load("ct_explicit_le.dcm")
    set_core_phi(ds)
    ds.ImageComments = FREE_TEXT

    # Level 3: ReferencedStudySequence inside ModifiedAttributesSequence
    # inside OriginalAttributesSequence, with a PatientName at the bottom.
    study_ref = item(
        ReferencedSOPClassUID=STUDY_REF_CLASS,
        ReferencedSOPInstanceUID=ds.StudyInstanceUID,
        PatientName=NAME,
    )
    modified = item(PatientName=NAME, PatientID=PID)
    modified.ReferencedStudySequence = Sequence([study_ref])
    original = item(
        AttributeModificationDateTime="20040119072730",
        ModifyingSystem="make_derived.py",
        ReasonForTheAttributeModification="CORRECT",
    )
    original.ModifiedAttributesSequence = Sequence([modified])
    ds.OriginalAttributesSequence = Sequence([original])

    ds.RequestAttributesSequence = Sequence([
        item(AccessionNumber=ACCESSION, RequestedProcedureDescription="CT ABDOMEN WITH CONTRAST"),
    ])
    ds.ReferencedImageSequence = Sequence([
        item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=ref_uid(ds)),
    ])

    # (0009,0010) already holds the real creator "GEMS_IDEN_01", so pydicom
    # reserves the next free slot: creator (0009,0011) -> elements (0009,11xx).
    block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "PN", NAME)
    block.add_new(0x02, "LO", PID)

    # Retired curve and overlay groups carrying the name.
    ds.add(DataElement(0x50003000, "OB", NAME.encode("ascii")))
    ds.add(DataElement(0x60004000, "LT", NAME))

    # Digital Signatures Sequence (FFFA,FFFA) with one item; written after Pixel Data.
    sig = Dataset()
    # 2.25 UID from a name-based (hash, not random) UUID; pydicom's generate_uid
    # ignores entropy_srcs when prefix=None and would return a random UID.
    sig.DigitalSignatureUID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "dicom-deid/phi_nested/signature").int)
    ds.DigitalSignaturesSequence = Sequence([sig])

    # The CT already ends with (FFFC,FFFC) Data Set Trailing Padding; replace
    # its contents with PHI-bearing bytes so leaking it is detectable.
    pad = f"{NAME} {PID}".encode("ascii")
    pad += b"\x00" * (64 - len(pad))
    ds.add(DataElement(0xFFFCFFFC, "OB", pad))
    return ds


def make_phi_nested_ref():
    ds = load("ct_explicit_le.dcm")
    set_core_phi(ds)
    new_uid = ref_uid(ds)
    ds.SOPInstanceUID = new_uid
    ds.file_meta.MediaStorageSOPInstanceUID = new_uid
    ds.InstanceNumber = 2
    # Study/Series/FrameOfReference UIDs stay those of the source, as in phi_nested.dcm.
    return ds


def make_phi_implicit_private():
    ds = load("mr_implicit_le.dcm")
    set_core_phi(ds)
    ds.ImageComments = FREE_TEXT
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)  # -> (0011,0010)
    block.add_new(0x10, "PN", NAME)  # -> (0011,1010); no VR on disk in implicit VR
    return ds


def un_bytes(text):
    raw = text.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def make_phi_un_vr():
    ds = load("mr_fake_phi_dicognito.dcm")
    # Standard tags whose VR on disk is UN: a de-identifier must match them by tag.
    # pydicom's DataElement() silently swaps VR UN for the dictionary VR of a
    # public tag while config.replace_un_with_known_vr is True (the default),
    # so switch that off while building these elements.
    saved = pydicom.config.replace_un_with_known_vr
    pydicom.config.replace_un_with_known_vr = False
    try:
        for tag, text in (
            (0x00100010, NAME),          # PatientName
            (0x00100030, BIRTH),         # PatientBirthDate
            (0x00080080, INSTITUTION),   # InstitutionName
            (0x00080090, PHYSICIAN),     # ReferringPhysicianName
        ):
            elem = DataElement(tag, "UN", un_bytes(text))
            assert elem.VR == "UN"
            ds.add(elem)
    finally:
        pydicom.config.replace_un_with_known_vr = saved
    ds.PatientID = PID
    ds.AccessionNumber = ACCESSION
    return ds


def make_phi_big_endian():
    ds = load("mr_explicit_be.dcm")
    set_core_phi(ds)
    ds.ImageComments = FREE_TEXT
    ds.RequestAttributesSequence = Sequence([
        item(AccessionNumber=ACCESSION, RequestedProcedureDescription="MR HEAD"),
    ])
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "PN", NAME)
    return ds


def make_phi_latin1():
    ds = load("charset_latin1.dcm")
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    ds.PatientName = LATIN1_NAME
    ds.InstitutionName = LATIN1_INSTITUTION
    ds.PatientID = PID
    ds.PatientBirthDate = BIRTH
    ds.ReferringPhysicianName = PHYSICIAN
    return ds


def latin1_hex(text):
    return " ".join(f"{b:02x}" for b in text.encode("latin-1"))


def expected_phi_text():
    lines = [
        "# Fake PHI injected by testdata/make_derived.py. One string per line, UTF-8.",
        "# Lines starting with '#' are comments. No de-identified output may contain any of them.",
        "# phi_latin1.dcm stores the two non-ASCII strings in ISO 8859-1; search raw bytes for these too:",
        f"#   latin-1 {LATIN1_NAME} = {latin1_hex(LATIN1_NAME)}",
        f"#   latin-1 {LATIN1_INSTITUTION} = {latin1_hex(LATIN1_INSTITUTION)}",
        NAME,
        PID,
        BIRTH,
        ACCESSION,
        INSTITUTION,
        PHYSICIAN,
        FREE_TEXT,
        LATIN1_NAME,
        LATIN1_INSTITUTION,
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def not_dicom_text():
    return (
        b"This is a plain text file. It is NOT a DICOM file.\n"
        b"It has no 128-byte preamble and no 'DICM' magic; readers must reject it cleanly.\n"
    )


def garbage_bytes():
    # PNG signature, then a fixed, non-random byte pattern (1024 bytes in total).
    head = b"\x89PNG\r\n\x1a\n"
    body = bytes(((i * 37) + 11) & 0xFF for i in range(1024 - len(head)))
    return head + body


def encode(ds):
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def outputs():
    return {
        OUT / "phi_nested.dcm": encode(make_phi_nested()),
        OUT / "phi_nested_ref.dcm": encode(make_phi_nested_ref()),
        OUT / "phi_implicit_private.dcm": encode(make_phi_implicit_private()),
        OUT / "phi_un_vr.dcm": encode(make_phi_un_vr()),
        OUT / "phi_big_endian.dcm": encode(make_phi_big_endian()),
        OUT / "phi_latin1.dcm": encode(make_phi_latin1()),
        OUT / "expected_phi.txt": expected_phi_text(),
        BAD / "not_dicom.txt": not_dicom_text(),
        BAD / "garbage.bin": garbage_bytes(),
    }


def main():
    check = "--check" in sys.argv[1:]
    drift = 0
    for path, data in outputs().items():
        rel = path.relative_to(HERE)
        if check:
            if not path.exists() or path.read_bytes() != data:
                print(f"DIFFERS: {rel}")
                drift += 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {rel} ({len(data)} bytes)")
    if check:
        print("all derived files reproduce byte for byte" if not drift else f"{drift} file(s) differ")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
