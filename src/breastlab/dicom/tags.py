"""Tags and SOP classes the header reader needs (shared by opening, extraction and fallback)."""
from __future__ import annotations

#: SOP classes (exact or prefix) that are never images for sorting purposes.
NON_IMAGE_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.66.4": "segmentation (SEG)",
    "1.2.840.10008.5.1.4.1.1.66.5": "surface segmentation",
    "1.2.840.10008.5.1.4.1.1.66.1": "spatial registration",
    "1.2.840.10008.5.1.4.1.1.66.2": "spatial fiducials",
    "1.2.840.10008.5.1.4.1.1.66.3": "deformable registration",
    "1.2.840.10008.5.1.4.1.1.66": "raw data",
    "1.2.840.10008.5.1.4.1.1.481.": "radiotherapy (RT) object",
    "1.2.840.10008.5.1.4.1.1.88.": "structured report / key object selection",
    "1.2.840.10008.5.1.4.1.1.11.": "presentation state",
    "1.2.840.10008.5.1.4.1.1.104.": "encapsulated document (PDF/CDA/STL)",
    "1.2.840.10008.5.1.4.1.1.4.2": "MR spectroscopy",
    "1.2.840.10008.5.1.4.1.1.9.": "waveform",
    "1.2.840.10008.5.1.4.1.1.67": "real world value mapping",
    "1.2.840.10008.5.1.4.1.1.90.1": "content assessment results",
}
NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "DOC", "REG", "FID", "RWV"}

# sequences the walker descends into (everything else is skipped by length)
SHARED_FG = 0x52009229
PER_FRAME_FG = 0x52009230
MR_DIFFUSION = 0x00189117
FRAME_CONTENT = 0x00209111
PLANE_POSITION = 0x00209113
PLANE_ORIENTATION = 0x00209116
PIXEL_MEASURES = 0x00289110
MR_FRAME_TYPE = 0x00189226
MR_TIMING = 0x00189112
MR_MODIFIER = 0x00189115
MR_ECHO = 0x00189114
FRAME_ANATOMY = 0x00209071
VIEW_CODE = 0x00540220
DESCEND = frozenset(
    {SHARED_FG, PER_FRAME_FG, MR_DIFFUSION, FRAME_CONTENT, PLANE_POSITION, PLANE_ORIENTATION,
     PIXEL_MEASURES, MR_FRAME_TYPE, MR_TIMING, MR_MODIFIER, MR_ECHO, FRAME_ANATOMY, VIEW_CODE}
)
