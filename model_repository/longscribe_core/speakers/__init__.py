"""Who spoke when: speaker embeddings of the speech, clustered into speakers, put on the words.

The pure half of diarization (numpy, scipy, librosa; no Triton):
- `encoder`: the GE2E speaker encoder (resemblyzer's weights, run in numpy): audio -> 256-d embedding;
- `voices`: a chunk's speech pieces -> windows short enough to hear a change of speaker -> `Voice`s;
- `cluster`: the voices of a whole recording -> speaker labels, the count found or bounded;
- `labels`: labels -> the speaker of each word, segments split where the speaker changes;
- `known`: clusters named after enrolled reference voices.
"""

from longscribe_core.segments import Voice
from longscribe_core.speakers.cluster import MAX_SPEAKERS, centroids, check_bounds, cluster_voices
from longscribe_core.speakers.encoder import EMBEDDING_DIM, embed, embed_batch
from longscribe_core.speakers.known import match_known
from longscribe_core.speakers.labels import label_segments, speaker_name
from longscribe_core.speakers.voices import speech_pieces, voice_windows, voices_of

__all__ = [
    "EMBEDDING_DIM",
    "MAX_SPEAKERS",
    "Voice",
    "centroids",
    "check_bounds",
    "cluster_voices",
    "embed",
    "embed_batch",
    "label_segments",
    "match_known",
    "speaker_name",
    "speech_pieces",
    "voice_windows",
    "voices_of",
]
