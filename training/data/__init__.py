"""Training data: Sky Time-lapse folders, folders of video files, and procedural time-lapses.

`clips` (finding and decoding clips) and `synth` (the procedural generator) are torch-free;
`windows` (tensors and the step sampler) needs torch and is imported from there explicitly.
"""

from training.data.clips import Clip, find_clips
from training.data.synth import render_clip, write_dataset

__all__ = ["Clip", "find_clips", "render_clip", "write_dataset"]
