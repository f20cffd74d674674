"""An OME-TIFF whose OME-XML (built with ome-types) holds planes, an instrument, objective settings, channel
colours and settings, and structured annotations with their links; and a field-by-field comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.pixels import random_pixels

#: T, C, Z, Y, X of the image (C != Z, so a transposition would show).
T, C, Z, Y, X = 2, 3, 2, 16, 12
CHECKSUMS_NS = "urn:ome-arrow-core:tiff-checksums:1"


def rich_ome(ome_types: Any) -> Any:
    """The OME model of one TZCYX uint16 image (IFDs in XYCZT order)."""
    m = ome_types.model
    instrument = m.Instrument(
        id="Instrument:7",
        microscope=m.Microscope(manufacturer="Acme", model="Scope 9", type="Inverted"),
        objectives=[
            m.Objective(
                id="Objective:7:0", nominal_magnification=40.0, lens_na=1.3, immersion="Oil", correction="PlanApo"
            )
        ],
        detectors=[m.Detector(id="Detector:7:0", model="Cam 2", type="CMOS")],
        lasers=[m.Laser(id="LightSource:7:0", wavelength=488.0, model="L488")],
    )
    annotations = m.StructuredAnnotations(
        map_annotations=[
            m.MapAnnotation(
                id="Annotation:map",
                namespace="example.org/plate",
                value=m.Map(ms=[m.Map.M(k="well", value="B03"), m.Map.M(k="site", value="4")]),
            )
        ],
        comment_annotations=[m.CommentAnnotation(id="Annotation:comment", value="first try")],
        tag_annotations=[m.TagAnnotation(id="Annotation:tag", value="control", description="a control well")],
        long_annotations=[m.LongAnnotation(id="Annotation:long", value=42)],
    )
    colours = [m.Color((0, 0, 255)), m.Color((0, 255, 0)), m.Color((255, 0, 255, 0.5))]
    channels = [
        m.Channel(
            id=f"Channel:0:{c}",
            name=name,
            samples_per_pixel=1,
            color=colours[c],
            emission_wavelength=ex + 30.0,
            excitation_wavelength=ex,
            fluor=name,
            pinhole_size=1.5,
            illumination_type="Epifluorescence",
            light_source_settings=m.LightSourceSettings(id="LightSource:7:0", attenuation=0.5),
            detector_settings=m.DetectorSettings(id="Detector:7:0", gain=2.0, binning="2x2"),
            annotation_refs=[m.AnnotationRef(id="Annotation:tag")] if c == 1 else [],
        )
        for c, (name, ex) in enumerate((("DAPI", 405.0), ("GFP", 488.0), ("Cy5", 640.0)))
    ]
    planes = [
        m.Plane(
            the_t=t,
            the_z=z,
            the_c=c,
            delta_t=1.25 * t + 0.01 * c,
            delta_t_unit="s",
            exposure_time=10.0 + c,
            exposure_time_unit="ms",
            position_x=100.5,
            position_y=-20.25,
            position_z=3.0 + 0.5 * z,
            position_z_unit="µm",
        )
        for t in range(T)
        for z in range(Z)
        for c in range(C)
    ]
    pixels = m.Pixels(
        id="Pixels:0",
        dimension_order="XYCZT",
        type="uint16",
        size_t=T,
        size_c=C,
        size_z=Z,
        size_y=Y,
        size_x=X,
        physical_size_x=0.325,
        physical_size_y=0.325,
        physical_size_z=0.5,
        time_increment=1.25,
        channels=channels,
        tiff_data_blocks=[m.TiffData(ifd=0, plane_count=T * C * Z)],
        planes=planes,
    )
    image = m.Image(
        id="Image:cells",
        name="cells",
        description="a rich image",
        acquisition_date="2024-05-01T10:20:30",
        instrument_ref=m.InstrumentRef(id="Instrument:7"),
        objective_settings=m.ObjectiveSettings(
            id="Objective:7:0", correction_collar=0.17, medium="Oil", refractive_index=1.518
        ),
        stage_label=m.StageLabel(name="B03-4", x=100.5, y=-20.25),
        pixels=pixels,
        annotation_refs=[m.AnnotationRef(id="Annotation:map"), m.AnnotationRef(id="Annotation:comment")],
    )
    return ome_types.OME(
        instruments=[instrument], images=[image], structured_annotations=annotations, creator="a microscope"
    )


def write_rich_tiff(path: Path, ome_types: Any) -> tuple[Any, np.ndarray]:
    """Write the rich OME-TIFF at ``path``; (its OME model, its TZCYX pixels)."""
    import tifffile

    model = rich_ome(ome_types)
    pixels = random_pixels((T, Z, C, Y, X), "uint16", seed=5)
    tifffile.imwrite(
        path,
        pixels.reshape(-1, Y, X),
        description=ome_types.to_xml(model).encode("utf-8"),
        metadata=None,
        photometric="minisblack",
    )
    return model, pixels


def _no_ids(obj: Any) -> Any:
    return obj.model_dump(exclude={"id"})


def assert_same_ome(got: Any, want: Any) -> None:
    """The parts of ``want`` (the source's OME) that a copy must keep, compared field by field in ``got``."""
    gi, wi = got.images[0], want.images[0]
    assert got.instruments == want.instruments
    for field in ("name", "description", "acquisition_date", "instrument_ref", "objective_settings", "stage_label"):
        assert getattr(gi, field) == getattr(wi, field), field
    assert gi.annotation_refs == wi.annotation_refs
    gp, wp = gi.pixels, wi.pixels
    for field in ("size_t", "size_c", "size_z", "size_y", "size_x", "type", "time_increment"):
        assert getattr(gp, field) == getattr(wp, field), field
    for ax in "xyz":
        assert getattr(gp, f"physical_size_{ax}") == getattr(wp, f"physical_size_{ax}")
        assert getattr(gp, f"physical_size_{ax}_unit") == getattr(wp, f"physical_size_{ax}_unit")
    assert gp.planes == wp.planes
    assert [_no_ids(c) for c in gp.channels] == [_no_ids(c) for c in wp.channels]
    mine = got.structured_annotations
    assert [
        a for a in mine.map_annotations if a.namespace != CHECKSUMS_NS
    ] == want.structured_annotations.map_annotations
    for kind in ("comment_annotations", "tag_annotations", "long_annotations", "xml_annotations", "term_annotations"):
        assert getattr(mine, kind) == getattr(want.structured_annotations, kind), kind


def lies(xml: str) -> dict[str, str]:
    """Damaged or lying versions of the rich image's stored OME-XML ``xml``, by the words the error must say."""
    return {
        "does not parse": xml[: len(xml) // 2],
        "describes sizes": xml.replace('SizeC="3"', 'SizeC="2"', 1),
        "pixel type": xml.replace('Type="uint16"', 'Type="uint8"', 1),
        "channels of 4 samples": xml.replace('SamplesPerPixel="1"', 'SamplesPerPixel="2"', 1),
        "TheZ=5 outside": xml.replace('TheZ="1"', 'TheZ="5"', 1),
        "not one OME Image": xml.replace("<Image ", "<Imagery ", 1).replace("</Image>", "</Imagery>", 1),
    }


def image_with_ome_xml(pixels: np.ndarray, directory: Path, ome_types: Any) -> Any:
    """``OMEArrow`` of TZCYX ``pixels`` whose meta holds a stored OME-XML (ome-types' document of its own
    metadata), through a record file in ``directory``."""
    from dataclasses import replace

    from ome_arrow_core import OMEArrow
    from ome_arrow_core.plugin_api import image_document
    from ome_arrow_core.record import write_record_file

    img = OMEArrow(pixels, dim_order="TZCYX")
    xml = image_document(ome_types.to_xml(img.ome_metadata), 0)  # as a reader keeps it
    assert xml is not None
    write_record_file(replace(img.meta, ome_xml=xml), pixels, directory / "source.ome.parquet")
    out = OMEArrow(directory / "source.ome.parquet")
    assert out.meta.ome_xml == xml
    return out
