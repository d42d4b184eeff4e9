"""The keys of the catalog's ``meta`` table: what a data directory records about itself.

They live with the catalog that stores them, so the pipelines that read and
write them need not import the composition root.
"""

from __future__ import annotations

#: The index generation in force (its state file names the segments).
GENERATION_KEY = "index_generation"
#: "name version" of the embedder whose vectors the catalog holds.
EMBEDDER_KEY = "embedder"
#: The "same" thresholds ``imagesearch calibrate`` measured, and the measurement.
CALIBRATION_KEY = "same_calibration"
CALIBRATION_REPORT_KEY = "same_calibration_report"
#: Epoch seconds of the last write: readers key caches that no index change invalidates on it.
LAST_WRITE_KEY = "last_write_at"
#: Epoch seconds of the last write that changed what a search filter selects (a product added, its ship_to,
#: categories or images changed): filters are kept until it moves, so a price change does not rebuild them.
FILTERS_KEY = "filters_changed_at"
