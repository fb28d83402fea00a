"""Write tags and ratings into XMP/IPTC so other photo apps read them; read theirs back.

Fields (written with pyexiv2, read by digiKam, Lightroom, darktable, Immich, PhotoPrism):

- ``Xmp.dc.subject`` (rdf:Bag) and ``Iptc.Application2.Keywords`` (64 bytes at
  most each, the IPTC record marked UTF-8): flat keywords, the tag names;
- ``Xmp.lr.hierarchicalSubject`` (rdf:Bag of ``category|tag``) and
  ``Xmp.digiKam.TagsList`` (``category/tag``);
- ``Xmp.xmp.Rating`` 0-5 with ``Xmp.MicrosoftPhoto.Rating`` (percent) to match;
- named faces as MWG face regions (``Xmp.mwg-rs.Regions``: name, type Face, the area
  as fractions of the stored image, which readers turn with the EXIF orientation as
  they turn the pixels), beside the ``People|Name`` keywords, so digiKam, Lightroom
  and Immich show the names on the faces. photolab writes regions only where a file
  has none, or has the ones photolab wrote (a digest in its namespace tells): regions
  another app or a person drew are never replaced;
- photolab's own namespace (``photolab:``, :data:`NAMESPACE`): the tags photolab
  wrote (so a tag it no longer gives is taken out again, and only that),
  per-tag confidence, the model version, the tags a person confirmed, and the
  automatic rating it set.

Merging: keywords and ratings already in a file stay. A rating a person set
(in another app, or in photolab) is never replaced by an automatic one; the
automatic rating (1 for a blurry, dark or blown-out photo) goes only where a
file has none. People and place tags are written only once a person confirmed
them, unless ``write_unreviewed`` opts those categories in.

Where: in the file (JPEG, TIFF, PNG, WebP: what Exiv2 writes), in an XMP sidecar,
or both. Videos only ever get a sidecar (``clip.mp4.xmp``): a video container is
never rewritten, and reading a video's keywords reads only its sidecar. RAW and
HEIC/AVIF photos (Exiv2 cannot write those), photos on
read-only or removable media, and anything else that cannot be written in
place get a sidecar. Sidecars are named ``IMG_1.jpg.xmp`` (``sidecar_naming="ext"``,
darktable and digiKam) or ``IMG_1.xmp`` (``"stem"``, Lightroom); an existing
sidecar under either name is updated, never replaced by a second one.

Safety: the new bytes are made in memory and verified before anything is
written: photolab's fields read back as intended; every other EXIF (maker notes
included), IPTC and XMP value and the ICC profile are unchanged; the image data
is unchanged (for JPEG and PNG the non-metadata segments are byte-identical,
for other formats the decoded pixels hash the same); the file opens. Then
:func:`photolab.core.fileops.rewrite` keeps the previous bytes under
``.photolab/versions/``, journals the change and atomically replaces the file,
so a process killed at any moment leaves old or new bytes, never a mix.
:func:`restore` (``photolab restore``) puts any kept version back byte-identical.

The parts: :mod:`.fields` (the field names, reading one file or sidecar), :mod:`.decide` (what to write per
photo), :mod:`.splice` (byte-level JPEG/PNG/XMP packet work and the image-data checks), :mod:`.rendering`
(making and verifying one file's new bytes), :mod:`.write` (:func:`plan` writes nothing, :func:`apply`
does the journaled work, :func:`write_metadata` both), :mod:`.importing` (other apps' keywords and ratings
into the catalog), :mod:`.restoring` (kept previous bytes, :func:`restore`). Their SQL is in
:mod:`photolab.store.metadata`.
"""

from __future__ import annotations

# the names below were all importable from photolab.stages.metadata when it was one module: they stay so
# ruff: noqa: F401
from photolab.stages.metadata.decide import Decision, WriteOptions, decisions_for_writing, target_values
from photolab.stages.metadata.fields import (AUTO_RATING_TAGS, IN_FILE_FORMATS, IPTC_FORMATS, IPTC_MAX_BYTES, IPTC_UTF8, K_AUTORATING,
                     K_CONF, K_HIER, K_IPTC_CS, K_IPTC_KW, K_MODEL, K_MSRATING, K_RATING, K_REGIONS_DIGEST,
                     K_REVIEWED, K_SUBJECT, K_TAGS, K_TAGSLIST, MS_RATING, NAMESPACE, NAMING, OWN_IPTC, OWN_XMP,
                     PREFIX, REGIONS, REVIEW_FIRST, WHERE, Embedded, MetadataError, _pyexiv2, existing_sidecar,
                     read_bytes, read_metadata, region_values, regions_digest, sidecar_candidates)
from photolab.stages.metadata.importing import import_metadata, set_rating
from photolab.stages.metadata.rendering import render
from photolab.stages.metadata.splice import EMPTY_PACKET, _pixel_digest
from photolab.stages.metadata.restoring import restore, versions
from photolab.stages.metadata.write import MetadataPlan, MetadataReport, apply, plan, read_only_dir, write_metadata

__all__ = ["Embedded", "MetadataError", "MetadataPlan", "MetadataReport", "WriteOptions", "apply",
           "import_metadata", "plan", "read_metadata", "restore", "set_rating", "versions", "write_metadata"]
