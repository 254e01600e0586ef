"""Paper stage III: the exported PromptKD student, teacher-free inference.

``tools/export_student.py`` writes one self-contained artefact (:mod:`stage3.artefact`); this package
reads it and classifies images (:mod:`stage3.model`, :mod:`stage3.data`) and exports the student to
ONNX (:mod:`stage3.onnx_export`). It imports only :mod:`clip` and the engine's image reading and
transforms: no trainer, teacher, teacher cache, dataset module or text tower.
"""
