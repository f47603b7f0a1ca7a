"""Video structuring (视频结构化): attributes of passing objects for the view library.

* :mod:`.plate_fusion` — per-character, confidence-weighted voting over a track's plate reads;
* :mod:`.color` — a documented HSV colour model for vehicle bodies (GA/T ColorType names);
* :mod:`.vehicle_class` — the GA/T 16.4 vehicle-type code from the plate's colour (GA 36-2018)
  and the detector's class;
* :mod:`.vehicle` — the checkpoint (卡口) stage: reads plates on a motor-vehicle track's
  best-view candidates, fuses them and puts plate, plate image and body colour on the track's
  ``vehicle_pass`` event.

See ``docs/STRUCTURING.md`` for the method and the measured accuracy and cost.
"""
