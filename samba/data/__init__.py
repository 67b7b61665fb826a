"""Real-EEG data layer: registry (sources + sha256), fetch/verify, readers, preprocessing, windows,
the four downstream tasks and their splits, the pretraining corpus, and an on-disk cache.

    >>> from samba.data import load_task, split_task
    >>> ds = load_task("eegmat-workload", mirror="/path/to/mirror")   # WindowDataset, X (N, C, T) float32
    >>> idx = split_task(ds, seed=0)                                 # {"train", "val", "test"} index arrays
    >>> train = ds.subset(idx["train"])

Modules, in the order data flows through them:
    registry     registry.toml, fetch() (mirror -> cache -> pooch download, sha256-verified), verify()
    readers      file -> mne.io.Raw with canonical 10-05 names and events as annotations; read_raw()
    preprocess   band-pass, resample to 128 Hz, robust scaling, spike clipping, NaN/flat channel handling
    cache        preprocessed recordings on disk (np.load mmap), keyed by file sha256 + parameters + code
    recordings   registry file -> cached preprocessed Recording; file naming -> subject/session/run
    windows      WindowDataset and the windowing helpers
    tasks        TASKS, load_task, split_task, test_subjects
    corpus       pretraining_corpus
    external     the paper's other datasets (TUAB, MOABB ones, STEW, DREAMER) when the user has them
    cli          `samba data list` / `samba data verify`
"""

from . import registry
from .corpus import pretraining_corpus
from .preprocess import BadChannelError, Preprocessing, SamplingRateError
from .readers import CorruptFileError, read_raw
from .registry import ChecksumError, DataNotAvailableError, fetch, load_registry, verify
from .tasks import TASKS, EmptySplitError, load_task, split_task, test_mask, test_subjects
from .windows import WindowDataset

__all__ = [
    "TASKS", "WindowDataset", "load_task", "split_task", "test_subjects", "test_mask", "pretraining_corpus",
    "registry", "fetch", "verify", "load_registry", "read_raw", "Preprocessing",
    "DataNotAvailableError", "ChecksumError", "CorruptFileError", "SamplingRateError", "BadChannelError",
    "EmptySplitError",
]
