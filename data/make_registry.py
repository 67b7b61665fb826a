"""Regenerate ``samba/data/registry.toml`` from a SHA256SUMS listing of the public releases.

    python data/make_registry.py /path/to/mirror/SHA256SUMS.full > samba/data/registry.toml

The dataset metadata (licence, citation, device, tasks, how to obtain) lives in ``DATASETS`` below; the
file list (path, sha256, public URL) is generated so that the registry names every file of the public
release, mirrored or not. Run it again whenever the listing changes; the output is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

# One entry per dataset. ``mirror_dir`` is the folder inside a mirror (and inside the download cache);
# ``url_prefix`` + the path below ``mirror_dir`` is the public URL of a file.
DATASETS: dict[str, dict] = {
    "eegmmidb": dict(
        title="EEG Motor Movement/Imagery Database (BCI2000)",
        publisher="PhysioNet",
        licence="ODC-By-1.0",
        citation=(
            "Schalk G, McFarland DJ, Hinterberger T, Birbaumer N, Wolpaw JR. BCI2000: A General-Purpose "
            "Brain-Computer Interface (BCI) System. IEEE Trans Biomed Eng 51(6):1034-1043, 2004. "
            "Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet. Circulation 101(23):e215-e220, 2000."
        ),
        homepage="https://physionet.org/content/eegmmidb/1.0.0/",
        url_prefix="https://physionet.org/files/eegmmidb/1.0.0/",
        mirror_dir="eegmmidb",
        device="eegmmidb",
        montage="64-channel 10-10 cap; EDF names carry dots ('Fc5.')",
        sfreq=160.0,
        reader="eegmmidb",
        tasks=["eegmmidb-mi"],
        obtain="Direct download (PhysioNet, open access). The registry lists subject S001 (14 runs).",
    ),
    "eegmat": dict(
        title="EEG During Mental Arithmetic Tasks",
        publisher="PhysioNet",
        licence="ODC-By-1.0",
        citation=(
            "Zyma I, Tukaev S, Seleznov I, Kiyono K, Popov A, Chernykh M, Shpenkov O. Electroencephalograms "
            "during Mental Arithmetic Task Performance. Data 4(1):14, 2019."
        ),
        homepage="https://physionet.org/content/eegmat/1.0.0/",
        url_prefix="https://physionet.org/files/eegmat/1.0.0/",
        mirror_dir="eegmat",
        device="10-20",
        montage="Neurocom 19 EEG 10-20 ('EEG Fp1', old names T3/T4/T5/T6) + 'EEG A2-A1' + 'ECG ECG'",
        sfreq=500.0,
        reader="eegmat",
        tasks=["eegmat-workload"],
        obtain="Direct download (PhysioNet, open access). SubjectNN_1 = rest, SubjectNN_2 = serial subtraction.",
    ),
    "eeg_eye_state": dict(
        title="EEG Eye State",
        publisher="UCI Machine Learning Repository",
        licence="CC-BY-4.0",
        citation="Roesler O. EEG Eye State. UCI Machine Learning Repository, 2013. https://doi.org/10.24432/C57G7J",
        homepage="https://archive.ics.uci.edu/dataset/264/eeg+eye+state",
        url_prefix="https://archive.ics.uci.edu/static/public/264/",
        mirror_dir="eeg_eye_state",
        device="emotiv_epoc",
        montage="Emotiv EPOC 14 ch (AF3 F7 F3 FC5 T7 P7 O1 O2 P8 T8 FC6 F4 F8 AF4); CSV column 'P' is P7",
        sfreq=128.0,
        reader="eye_state_csv",
        tasks=["eyes-open-closed"],
        obtain=(
            "UCI serves a zip archive (eeg+eye+state.zip). fetch() downloads it with pooch and the Unzip "
            "processor; the member that is a .csv is used as is, an .arff member is converted to the mirror's "
            "CSV layout (14 channel columns then 'class'). The sha256 recorded here is the CSV's; a converted "
            "ARFF that differs byte-wise is reported with a warning."
        ),
    ),
    "muse_p300": dict(
        title="eeg-notebooks v0.1 visual P300 (Muse 2016)",
        publisher="NeuroTechX",
        licence="BSD-3-Clause",
        citation=(
            "Barachant A, Morrison D, Banville H, Kowaleski J, Shaked U, Chevallier S, Tresols JJT. "
            "muse-lsl / eeg-notebooks (NeuroTechX), 2017. https://github.com/NeuroTechX/eeg-notebooks_v0.1"
        ),
        homepage="https://github.com/NeuroTechX/eeg-notebooks_v0.1",
        url_prefix="https://raw.githubusercontent.com/NeuroTechX/eeg-notebooks_v0.1/master/data/visual/P300/",
        mirror_dir="muse_p300",
        device="muse",
        montage="Muse 2016: TP9 AF7 AF8 TP10 (+ 'Right AUX', dropped)",
        sfreq=256.0,
        reader="muse_csv",
        tasks=["muse-p300"],
        obtain="Direct download from GitHub (raw files). Marker 1 = non-target, 2 = target onset.",
    ),
    "eeglab_sample": dict(
        title="EEGLAB tutorial recording eeglab_data.set (as kept in mne-testing-data)",
        publisher="SCCN / MNE-Python (mne-testing-data)",
        licence="BSD-3-Clause",
        citation=(
            "Delorme A, Makeig S. EEGLAB: an open source toolbox for analysis of single-trial EEG dynamics. "
            "J Neurosci Methods 134(1):9-21, 2004."
        ),
        homepage="https://github.com/mne-tools/mne-testing-data",
        url_prefix="https://raw.githubusercontent.com/mne-tools/mne-testing-data/master/EEGLAB/",
        mirror_dir="eeglab_sample",
        device="eeglab_32",
        montage="32 ch named 'EEG 000'...; this copy carries NO channel locations (chanlocs is empty)",
        sfreq=128.0,
        reader="eeglab",
        tasks=[],
        obtain="Direct download from GitHub; also shipped by `mne.datasets.testing.data_path()` (EEGLAB/).",
    ),
    "yasa": dict(
        title="YASA sample data",
        publisher="Raphael Vallat (YASA)",
        licence="BSD-3-Clause",
        citation="Vallat R, Walker MP. An open-source, high-performance tool for automated sleep staging. eLife 10:e70092, 2021.",
        homepage="https://github.com/raphaelvallat/yasa",
        url_prefix="https://raw.githubusercontent.com/raphaelvallat/yasa/master/notebooks/",
        mirror_dir="yasa",
        device="yasa_2ch",
        montage="FIF: F4-A1, CZ-A2 (mastoid-referenced); the .txt snippets are single-channel, electrode unnamed",
        sfreq=200.0,
        reader="fif",
        tasks=[],
        obtain="Direct download from GitHub (raw files).",
    ),
}

# The paper's other datasets: not mirrored, obtained by the user. No file list (none is redistributable
# or small enough to list here); `samba.data.external` loads them when present.
EXTERNAL: dict[str, dict] = {
    "tuab": dict(
        title="TUH EEG Abnormal Corpus v3.0.x",
        publisher="Temple University Hospital (Neural Engineering Data Consortium)",
        licence="TUH EEG data use agreement (free registration; not redistributable)",
        citation="Obeid I, Picone J. The Temple University Hospital EEG Data Corpus. Front Neurosci 10:196, 2016.",
        homepage="https://isip.piconepress.com/projects/nedc/html/tuh_eeg/",
        device="tuh_bipolar",
        montage="EDF, 'EEG FP1-REF' referential names; the paper uses the TCP bipolar montage (FP1-F7 ...)",
        loader="samba.data.external.load_tuab(root)",
        obtain="Register at the NEDC site, rsync the corpus, pass its root folder (edf/train, edf/eval) to load_tuab.",
        tasks=["tuab-abnormal"],
    ),
    "bnci2014_001": dict(
        title="BCI Competition IV dataset 2a (BNCI2014_001)",
        publisher="Graz University of Technology / BNCI Horizon 2020",
        licence="CC-BY-ND-4.0 (BNCI Horizon 2020 terms)",
        citation="Tangermann M et al. Review of the BCI Competition IV. Front Neurosci 6:55, 2012.",
        homepage="http://bnci-horizon-2020.eu/database/data-sets",
        device="bci_iv_2a",
        montage="22 EEG 10-20 + 3 EOG, 250 Hz",
        loader="samba.data.external.load_moabb('BNCI2014_001')",
        obtain="pip install moabb; MOABB downloads on first use into MNE_DATA.",
        tasks=["bci-iv-2a"],
    ),
    "physionet_mi": dict(
        title="PhysioNet EEG Motor Movement/Imagery, all 109 subjects (PhysionetMI)",
        publisher="PhysioNet",
        licence="ODC-By-1.0",
        citation="Schalk G et al. BCI2000. IEEE Trans Biomed Eng 51(6):1034-1043, 2004.",
        homepage="https://physionet.org/content/eegmmidb/1.0.0/",
        device="eegmmidb",
        montage="64-channel 10-10",
        loader="samba.data.external.load_moabb('PhysionetMI')  or  mne.datasets.eegbci.load_data",
        obtain="pip install moabb (or use mne.datasets.eegbci); 3.4 GB.",
        tasks=["eegmmidb-mi"],
    ),
    "grosse_wentrup2009": dict(
        title="Grosse-Wentrup 2009 motor imagery (GrosseWentrup2009)",
        publisher="MPI for Intelligent Systems",
        licence="see MOABB dataset page (research use)",
        citation="Grosse-Wentrup M, Liefhold C, Gramann K, Buss M. Beamforming in noninvasive brain-computer interfaces. IEEE TBME 56(4):1209-1219, 2009.",
        homepage="https://moabb.neurotechx.com/docs/generated/moabb.datasets.GrosseWentrup2009.html",
        device="10-10",
        montage="128 ch active electrodes, 500 Hz",
        loader="samba.data.external.load_moabb('GrosseWentrup2009')",
        obtain="pip install moabb; downloads from Zenodo on first use.",
        tasks=["grosse-wentrup-mi"],
    ),
    "stew": dict(
        title="STEW: Simultaneous Task EEG Workload",
        publisher="IEEE DataPort (Lim, Sourina, Wang 2018)",
        licence="IEEE DataPort terms (free account)",
        citation="Lim WL, Sourina O, Wang L. STEW: Simultaneous Task EEG Workload Data Set. IEEE TNSRE 26(11):2106-2114, 2018.",
        homepage="https://ieee-dataport.org/open-access/stew-simultaneous-task-eeg-workload-dataset",
        device="emotiv_epoc",
        montage="Emotiv EPOC 14 ch, 128 Hz; text files subXX_lo.txt / subXX_hi.txt",
        loader="samba.data.external.load_stew(root)",
        obtain="Download the zip from IEEE DataPort, extract, pass the folder to load_stew.",
        tasks=["stew-workload"],
    ),
    "dreamer": dict(
        title="DREAMER emotion dataset",
        publisher="Katsigiannis & Ramzan 2018 (Zenodo, on request)",
        licence="on request from the authors (research use)",
        citation="Katsigiannis S, Ramzan N. DREAMER: A Database for Emotion Recognition Through EEG and ECG Signals From Wireless Low-cost Off-the-Shelf Devices. IEEE JBHI 22(1):98-107, 2018.",
        homepage="https://zenodo.org/record/546113",
        device="emotiv_epoc",
        montage="Emotiv EPOC 14 ch, 128 Hz; one DREAMER.mat",
        loader="samba.data.external.load_dreamer(path_to_DREAMER_mat)",
        obtain="Request access on Zenodo, download DREAMER.mat, pass its path to load_dreamer.",
        tasks=["dreamer-valence", "dreamer-arousal"],
    ),
    "bci_comp_p300": dict(
        title="BCI Competition III dataset II (P300 speller) / MOABB P300 datasets",
        publisher="Wadsworth Center / BCI Competition",
        licence="BCI Competition terms (research use, cite the competition)",
        citation="Blankertz B et al. The BCI Competition III. IEEE TNSRE 14(2):153-159, 2006.",
        homepage="https://www.bbci.de/competition/iii/",
        device="eegmmidb",
        montage="64 ch 10-10, 240 Hz",
        loader="samba.data.external.load_moabb('BNCI2014_009')  (a MOABB P300 stand-in)",
        obtain="Competition files after registration at bbci.de; or a MOABB P300 dataset via pip install moabb.",
        tasks=["p300"],
    ),
}


def _q(value) -> str:
    """A TOML literal for str / float / list[str] / bool."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, list):
        return "[" + ", ".join(_q(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def main(sums_path: str) -> str:
    files: dict[str, list[tuple[str, str]]] = {name: [] for name in DATASETS}
    for line in Path(sums_path).read_text().splitlines():
        if not line.strip():
            continue
        digest, rel = line.split(maxsplit=1)
        top, _, inner = rel.strip().lstrip("*").partition("/")
        if top not in files:
            raise SystemExit(f"{rel}: no dataset for folder {top!r}")
        files[top].append((inner, digest))
    out = [
        "# SAMBA data registry: every dataset, its licence, citation and device, and every file of the public",
        "# release with its sha256 and public URL. Generated by data/make_registry.py from SHA256SUMS.full;",
        "# edit DATASETS there, not here.",
        "schema = 1",
        "",
    ]
    for name, meta in DATASETS.items():
        out.append(f"[datasets.{name}]")
        for key, value in meta.items():
            out.append(f"{key} = {_q(value)}")
        out.append("files = [")
        for inner, digest in sorted(files[name]):
            if name == "eeg_eye_state":
                # the public release is a zip; the CSV is extracted (see `obtain`)
                extra = f', url = {_q(meta["url_prefix"] + "eeg+eye+state.zip")}, archive = "zip"'
            else:
                extra = f", url = {_q(meta['url_prefix'] + inner)}"
            out.append(f"  {{ path = {_q(inner)}, sha256 = {_q(digest)}{extra} }},")
        out.append("]")
        out.append("")
    for name, meta in EXTERNAL.items():
        out.append(f"[external.{name}]")
        for key, value in meta.items():
            out.append(f"{key} = {_q(value)}")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python data/make_registry.py MIRROR/SHA256SUMS.full > samba/data/registry.toml")
    sys.stdout.write(main(sys.argv[1]))
