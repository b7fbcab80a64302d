"""Real-audio development corpora, built offline from Debian packages: an unlabelled pretraining pool and labelled dev tasks.

    python -m experiments.corpora [--out experiments/results/corpora] [--tasks pool,music,drums,speech,language] [--pool-hours 10]

Needs these Debian packages (flags may be spelled with dashes or underscores, `--pool-hours` or `--pool_hours`):

    apt-get install -y fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small \\
        avldrums.lv2-soundfont hedgewars-data ktuberling-data tuxpaint-stamps-default klettres-data fillets-ng-data \\
        fillets-ng-data-cs fillets-ng-data-nl colobot-common-sounds supertux-data lincity-ng-data minetest-data \\
        warzone2100-data sonic-pi-samples

A missing package is named in a warning (with this apt line) and whatever can be built without it is built. Every file
written is a 32 kHz mono 16-bit WAV. Sources are decoded with `audiojepa.audio.load_audio`; anything unusable (empty,
not audio, truncated, silent, too short) is listed in ROOT/TASK/skipped.csv (the columns `id,reason` of a
training run's skipped.csv) and never stops the build. Bad input (an unknown task, --pool-hours not above 0, an --out
that cannot be written) ends the command with one line, `corpora.py: error: ...`, and exit status 2, before anything
is written.

Test material stays out of training. Three SoundFonts share recordings: MuseScore_General_Lite.sf3 descends from
FluidR3_GM.sf2 and plays its recordings for 861 of its 1253 samples; TimGM6mb.sf2 shares one (its ocean waves, FluidR3's
and MuseScore's sea shore); the avldrums kits share none with the GM SoundFonts (but 44 hi-hat and cymbal samples with
each other). These counts come from the sample data, not the names (`experiments.soundfonts.shared_samples`: the start
of every sample at 8 kHz, matched by correlation; corpora.json `soundfonts_shared_samples`). So the music test is
TimGM6mb, less its one program that plays a shared recording, and the pool's renders leave out every preset that plays a
recording of a test SoundFont.

Layout (ROOT = --out; a task's folder is replaced whole when that task is rebuilt):
- `pool/<source>/<name>_<k>.wav`: the unlabelled pretraining pool, about `--pool-hours` hours. Sources: the audio
  files of tuxpaint-stamps-default, klettres-data, hedgewars-data, fillets-ng-data(-cs, -nl),
  colobot-common-sounds, supertux-data, lincity-ng-data, minetest-data, warzone2100-data (the .ogg files inside
  base.wz) and sonic-pi-samples, cut into 10 s pieces (piece k of recording <name>; a trailing piece under 1 s is
  dropped, a recording shorter than 10 s is kept whole when it lasts at least 0.5 s, silent pieces are dropped, at
  most 6 pieces per recording, spread over it, and a file whose bytes repeat an earlier one is used once). Each source
  gets an equal share of 90% of the hours, a source with less audio gives all it has and the rest is shared among the
  others (water-filling, smallest source first, so what one falls short by, short or silent or repeated files, goes to
  the ones after it); within a source the recordings are taken in a fixed pseudo-random order (sha1 of the path).
  The other 10% (`gm-renders/`) are 10 s pieces of random melodies, chords, bass lines and drum patterns rendered
  with fluidsynth from FluidR3_GM and MuseScore_General_Lite (the music task's training SoundFonts), leaving out the
  presets that play a recording of a test SoundFont (FluidR3's and MuseScore's sea shore, program 122).
  The pool holds NO test material (corpora.json `pool.excluded` says what was left out and why): no ktuberling-data
  file at all (its speakers read both splits of the language task), no hedgewars voice of the speech test voices
  (their folders are left out and so is any file with the same bytes as one of theirs, or as a ktuberling file), no
  render of a test SoundFont (TimGM6mb, the avldrums kits Black Pearl and Red Zeppelin) or of a recording they share.
- `music/{train,test}/<family>/`: 2 s notes of the 128 General MIDI programs, labelled by the 16 GM instrument
  families (program // 8), 12 notes per program and SoundFont (pitches spread over the program's usual range,
  seeded velocities and note lengths). Train: FluidR3_GM.sf2 + MuseScore_General_Lite.sf3 (one group: the same
  recordings); test: TimGM6mb.sf2 (timgm6mb-soundfont) less program 122 (sea shore), whose recording the training
  SoundFonts have. Silent renders (TimGM6mb's whistle above G#5, for one; FluidR3's contrabass, silent above C3, is only
  played up to C3) are dropped, listed and counted.
- `drums/{train,test}/<group>/`: single drum hits, 5 groups (kick, snare, hihat, tom, cymbal) by GM note number.
  Train: the GM drum kits (bank 128, programs < 48; the orchestra, marching and metronome kits use other note maps)
  of FluidR3_GM, TimGM6mb and MuseScore_General_Lite; test: the two real acoustic kits of avldrums.lv2-soundfont
  (Black_Pearl_4_LV2.sf2, Red_Zeppelin_4_LV2.sf2; their own note map, read from their sample names; they share some
  hi-hat and splash samples with each other, so both are on the test side). The same number of hits per kit and
  group (spread over the group's notes and over velocities); bit-identical renders are kept once per class.
- `speech/{train,test}/<phrase>/<voice>.wav`: the hedgewars-data voice packs, one class per phrase that at least 12
  of the 15 packs record (41 phrases); test voices British, Mobster, Pirate and Singer (never in train or the pool),
  train the other 11 packs; a train file with the bytes of a test file would be dropped (the Classic, Default and
  Default_uk packs share files, all three on the train side).
- `language/{train,test}/<language>/<word>.wav`: spoken-language identification, the ktuberling-data prompts (one
  speaker per language reads the names of the game's objects) of 5 languages with about 70 words each (de, el, en,
  gl, sl), the words they all record, split by word (crc32 of the word: 4 in 10 to test), so a test clip is a word
  never heard in training but always a speaker heard in training. REPORTED, NOT JUDGED: with one speaker per language
  the task measures speaker identity as much as language (log-mel mean+std scores 0.97-0.98). It is not rebuilt with
  several voices per language because no installed package has them: ktuberling tags several speakers only for
  Catalan (and partly Danish); the hedgewars packs in other languages than English are one or two per language (es,
  pl, ru); fillets-ng-data-cs/-nl have two voices each (the two fish) but one recording production per language, two
  classes only, and are pool sources.
- `env/{train,test}/<class>/` (optional): only when the 0ad-data package is installed (it is 1.4 GB and not installed
  by default; the script never downloads it): 10 s pieces of its sound files, labelled by their folder, the 12
  largest folders, one recording in four to test (by hash of its path). Untested on the real package: not judged.
- `TASK/groups.csv` (`path,group`, the path relative to the task's folder, over train and test): the unit that
  grouped cross-validation must not split, and that the train/test split does not split either where the task is
  judged. music: the SoundFont, SoundFonts that play the same recordings merged (2 groups: FluidR3_GM+MuseScore, and
  TimGM6mb); drums: the kit, kits that play the same recordings merged, that is every kit of one SoundFont and of
  SoundFonts sharing recordings (3 groups: FluidR3_GM+MuseScore, TimGM6mb, the two avldrums kits); speech: the voice
  pack, packs that share a file merged (13 groups); language: the speaker, one per language (5 groups, one per
  class); env: the source recording. corpora.json gives per task the groups, the fewest groups a class is in and
  `grouped_5fold`: whether every class is in at least 5 groups. Only speech has enough groups for 5-fold grouped
  cross-validation (every phrase is in 10 or more); music and drums have 2 and 3 (one split: train on one side, test
  on the other), language has one group per class (grouped CV is impossible: it would hold out whole classes), env
  (when built) has one group per recording.
- `TASK/skipped.csv` in each task's folder, and `corpora.json` (per task: split and class counts, groups, `judged`
  and `judged_reason`, the number of sources skipped; pool hours per source and what it excluded; the SoundFonts'
  shared samples; missing packages; seconds taken; the manifest's digests; the disjointness check).
- `manifest.json`: sha256, size and mtime (ns) of every WAV and groups.csv (paths relative to ROOT), per task the
  number of WAVs, their bytes and a digest, and the corpus digest, written after every build. The checks live in
  `experiments/manifest.py` and are importable from here too: `check_manifest(root, tasks=None, full=False)`
  raises a `CorpusError` naming the first missing, extra or changed file (by default it re-hashes only the files
  whose size or mtime differ from the manifest's; `full=True` re-hashes all); `corpus_digest(root, tasks=None)` is
  the digest of those tasks once checked, for a cache key; `check_disjoint(root)` raises when a test file's bytes
  are in the pool or in its task's train split (run after every build; corpora.json `disjoint`). Byte identity is
  the last line of defence: the pool's 10 s pieces are not byte-equal to whole test clips even when cut from the same
  recording, so what keeps test material out is the exclusion of its sources above.

A task is `judged` (corpora.json) when no group has clips on both sides and nothing else makes it a weak yardstick:
music, drums and speech are; language and env are reported, not judged.

Deterministic: fixed seeds, sorted listings, no dither (fluidsynth renders float), so a rebuild writes identical files.
"""
import csv, hashlib, io, json, math, os, re, shutil, subprocess, sys, time, zipfile, zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from audiojepa.cli import InputError, check_out, dashed_call_parse, fail

from audiojepa.audio import AudioDecodeError, load_audio
from audiojepa.sources import SkipLog

from .manifest import MANIFEST, CorpusError, check_disjoint, check_manifest, corpus_digest, write_manifest
from .soundfonts import SR, Note, fluidsynth_available, preset_samples, render_midi, render_notes, shared_samples, soundfont_presets

ROOT = Path(__file__).resolve().parents[1]
AUDIO_EXTS = ('.wav', '.ogg', '.flac', '.mp3', '.opus', '.aif', '.aiff')
TASKS = ('pool', 'music', 'drums', 'speech', 'language', 'env')
SILENCE_DB = -60.                  # a clip is silent when no 50 ms frame has an RMS above this (dBFS)

POOL_PACKAGES = ('tuxpaint-stamps-default', 'klettres-data', 'hedgewars-data', 'fillets-ng-data',
                 'fillets-ng-data-cs', 'fillets-ng-data-nl', 'colobot-common-sounds', 'supertux-data',
                 'lincity-ng-data', 'minetest-data', 'warzone2100-data', 'sonic-pi-samples')   # not ktuberling-data: the language task's
SOUNDFONT_PACKAGES = {'FluidR3_GM': 'fluid-soundfont-gm', 'TimGM6mb': 'timgm6mb-soundfont',
                      'MuseScore_General_Lite': 'musescore-general-soundfont-small',
                      'Black_Pearl_4_LV2': 'avldrums.lv2-soundfont', 'Red_Zeppelin_4_LV2': 'avldrums.lv2-soundfont'}
# MuseScore_General_Lite plays FluidR3_GM's recordings (861 of its samples), TimGM6mb shares one (a sea shore) with
# both, the avldrums kits none with any (`soundfont_overlap`): the two FluidR3 descendants train, TimGM6mb tests
MUSIC_TRAIN_SOUNDFONTS = ('FluidR3_GM', 'MuseScore_General_Lite')
MUSIC_TEST_SOUNDFONTS = ('TimGM6mb',)
DRUM_TRAIN_SOUNDFONTS = ('FluidR3_GM', 'TimGM6mb', 'MuseScore_General_Lite')
DRUM_TEST_SOUNDFONTS = ('Black_Pearl_4_LV2', 'Red_Zeppelin_4_LV2')
POOL_SOUNDFONTS = MUSIC_TRAIN_SOUNDFONTS    # the pool's GM renders, less every preset that plays a test SoundFont's recording
TASK_PACKAGES = {'pool': POOL_PACKAGES + ('fluidsynth', 'fluid-soundfont-gm', 'musescore-general-soundfont-small'),
                 'music': ('fluidsynth', 'fluid-soundfont-gm', 'timgm6mb-soundfont', 'musescore-general-soundfont-small'),
                 'drums': ('fluidsynth', 'fluid-soundfont-gm', 'timgm6mb-soundfont', 'musescore-general-soundfont-small',
                           'avldrums.lv2-soundfont'),
                 'speech': ('hedgewars-data',), 'language': ('ktuberling-data',), 'env': ('0ad-data',)}
APT_PACKAGES = ('fluidsynth', 'fluid-soundfont-gm', 'timgm6mb-soundfont', 'musescore-general-soundfont-small',
                'avldrums.lv2-soundfont', 'hedgewars-data', 'ktuberling-data') + tuple(p for p in POOL_PACKAGES if p != 'hedgewars-data')
POOL_EXCLUDED = [   # what the pool leaves out, and why (written into corpora.json)
    {'what': 'ktuberling-data, every file (and any file of another package with the bytes of one)',
     'why': 'the language task: its speakers read both its train and test words'},
    {'what': 'the hedgewars voice packs British, Mobster, Pirate, Singer (and any file with the bytes of one of theirs)',
     'why': 'the speech test voices'},
    {'what': 'renders of TimGM6mb, Black_Pearl_4_LV2, Red_Zeppelin_4_LV2',
     'why': 'the music and drums test SoundFonts'},
    {'what': 'the presets of the rendered SoundFonts that play a recording of a test SoundFont (gm_render_left_out)',
     'why': 'the same recording as test material, found by sample data (experiments.soundfonts.shared_samples)'}]

HEDGEWARS_VOICES = Path('/usr/share/games/hedgewars/Data/Sounds/voices')
TEST_VOICES = ('British', 'Mobster', 'Pirate', 'Singer')
MIN_VOICES = 12                    # a phrase is a class when at least this many voice packs record it
KTUBERLING_SOUNDS = Path('/usr/share/ktuberling/sounds')
LANGUAGES = ('de', 'el', 'en', 'gl', 'sl')   # the ktuberling languages with about 70 words (the others: ~13 or ~170+)
LANGUAGE_TEST_IN_10 = 4                      # words with crc32 % 10 below this are test words

FAMILIES = ('piano', 'chromatic_percussion', 'organ', 'guitar', 'bass', 'strings', 'ensemble', 'brass', 'reed', 'pipe',
            'synth_lead', 'synth_pad', 'synth_effects', 'ethnic', 'percussive', 'sound_effects')
FAMILY_RANGE = {0: (33, 96), 1: (60, 96), 2: (36, 84), 3: (40, 76), 4: (28, 55), 5: (36, 84), 6: (48, 79), 7: (45, 80),
                8: (50, 84), 9: (60, 96), 10: (48, 84), 11: (48, 84), 12: (48, 84), 13: (48, 84), 14: (48, 79),
                15: (48, 72)}
PROGRAM_RANGE = {14: (60, 77), 15: (55, 84), 40: (55, 88), 41: (48, 76), 42: (36, 67), 43: (28, 48), 44: (40, 84),
                 45: (36, 84), 46: (36, 89), 47: (40, 55), 55: (48, 72), 56: (55, 82), 57: (40, 72), 58: (28, 58),
                 59: (55, 82), 60: (41, 77), 64: (56, 87), 65: (49, 81), 66: (44, 76), 67: (36, 69), 68: (58, 91),
                 69: (52, 81), 70: (34, 72), 71: (50, 91), 72: (74, 102), 112: (72, 96), 114: (52, 76), 116: (36, 60),
                 117: (40, 64), 118: (40, 64)}
DRUM_GROUPS = ('kick', 'snare', 'hihat', 'tom', 'cymbal')
GM_DRUM_NOTES = {'kick': (35, 36), 'snare': (38, 40), 'hihat': (42, 44, 46), 'tom': (41, 43, 45, 47, 48, 50),
                 'cymbal': (49, 51, 52, 53, 55, 57, 59)}
# avldrums 4-piece kits (sample names per key): 36 kick; 38/40 snare (centre/edge); 42/44/46/48 hi-hat (closed, pedal,
# semi-open, swish); 41/43 floor tom, 45/47 rack tom (centre/edge); 49/51/53/55/57/59/60 crash, ride, bell, splash,
# crash, ride, Paiste 22"; 50/52/58 are cymbal chokes (left out), 37/39/54/56/61 side stick, clap, tambourine, cowbell.
AVL_DRUM_NOTES = {'kick': (36,), 'snare': (38, 40), 'hihat': (42, 44, 46, 48), 'tom': (41, 43, 45, 47),
                  'cymbal': (49, 51, 53, 55, 57, 59, 60)}


def log(*a): print('[corpora]', *a, flush=True)
def _seed(*parts) -> int: return zlib.crc32('/'.join(map(str, parts)).encode())
def _sha1(b:bytes) -> str: return hashlib.sha1(b).hexdigest()
def slug(s:str) -> str: return re.sub(r'[^A-Za-z0-9]+', '-', s).strip('-') or 'x'


# ---------------------------------------------------------------------------------------------------- common parts
def frame_peak_db(wav:np.ndarray, sample_rate:int=SR, frame:float=0.05) -> float:
    "The loudest 50 ms frame's RMS in dBFS (-inf for digital silence)."
    n = max(1, int(frame * sample_rate)); x = np.asarray(wav, dtype=np.float64)
    if len(x) < n: x = np.pad(x, (0, n - len(x)))
    m = len(x) // n
    rms = np.sqrt((x[:m * n].reshape(m, n) ** 2).mean(1)).max()
    return 20 * math.log10(rms) if rms > 0 else -math.inf

def is_silent(wav, sample_rate:int=SR, threshold_db:float=SILENCE_DB) -> bool: return frame_peak_db(wav, sample_rate) < threshold_db

def write_wav(path:Path, wav, sample_rate:int=SR):
    "16-bit mono WAV; audio louder than full scale is scaled down to just under it."
    x = np.asarray(wav, dtype=np.float32)
    peak = float(np.abs(x).max()) if len(x) else 0.
    if peak > 0.999: x = x * (0.999 / peak)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sample_rate, subtype='PCM_16', format='WAV')


@dataclass
class Recording:
    "One source recording: `src` is a path, or the encoded bytes (a member of an archive); `label` names it in logs."
    label:str
    name:str
    src:object
    def data(self) -> bytes: return self.src if isinstance(self.src, (bytes, bytearray)) else Path(self.src).read_bytes()
    def duration(self) -> float:
        "Seconds, from the header (0 when unreadable)."
        try: return sf.info(io.BytesIO(self.src) if isinstance(self.src, (bytes, bytearray)) else str(self.src)).duration
        except Exception: return 0.


def recordings_from_paths(paths, base:Path|None=None) -> list:
    "`Recording`s of audio files, named by their path relative to `base` (default: their common folder)."
    paths = sorted(Path(p) for p in paths)
    if not paths: return []
    base = Path(base) if base else Path(os.path.commonpath([str(p.parent) for p in paths]))
    out, names = [], set()
    for p in paths:
        rel = str(p.relative_to(base)) if p.is_relative_to(base) else p.name
        name = slug(os.path.splitext(rel)[0])
        if name in names: name = slug(rel)
        names.add(name); out.append(Recording(str(p), name, p))
    return out


def cut_recordings(recordings, # paths or `Recording`s, processed in this order
                   out_dir:Path, # pieces go to out_dir/<name>_<k>.wav
                   piece_seconds:float=10., # length of a piece
                   skip_log:SkipLog|None=None, # where unusable sources are listed (one log per task)
                   max_seconds:float|None=None, # stop once this much audio is written
                   max_pieces:int|None=None, # at most this many pieces of one recording, spread evenly over it
                   min_tail:float=1., # a trailing piece shorter than this is dropped
                   min_short:float=0.5, # a recording shorter than a piece is kept whole from this length
                   seen:dict|None=None, # sha1 of file bytes -> first source: repeated files are used once
                   exclude_hashes:set=frozenset(), # sha1s of files that must not be used (test files)
                   sample_rate:int=SR,
                  ) -> dict: # {'seconds', 'files', 'recordings', 'silent_pieces', 'duplicates', 'excluded', 'recording_of' (file -> name)}
    "Decode recordings, cut them into pieces, drop silent ones and write 16-bit WAVs; unusable files go to `skip_log`."
    skip_log = skip_log if skip_log is not None else SkipLog()
    seen = {} if seen is None else seen
    out_dir = Path(out_dir); L = int(round(piece_seconds * sample_rate))
    stats = dict(seconds=0., files=[], recordings=0, silent_pieces=0, duplicates=0, excluded=0, recording_of={})
    for rec in recordings:
        if max_seconds is not None and stats['seconds'] >= max_seconds: break
        if not isinstance(rec, Recording): rec = recordings_from_paths([rec])[0]
        try: data = rec.data()
        except OSError as e:
            skip_log.add(rec.label, f'unreadable: {e.strerror or e}'); continue
        digest = _sha1(data)
        if digest in exclude_hashes: stats['excluded'] += 1; continue
        if digest in seen:
            stats['duplicates'] += 1; skip_log.add(rec.label, f'duplicate: same bytes as {seen[digest]}'); continue
        seen[digest] = rec.label
        try: wav = load_audio(data, sample_rate).numpy()
        except AudioDecodeError as e: skip_log.add(rec.label, e.reason); continue
        except Exception as e: skip_log.add(rec.label, f'decode failed: {type(e).__name__}: {e}'); continue
        n = len(wav)
        if n < L:
            if n < min_short * sample_rate:
                skip_log.add(rec.label, f'too short ({n / sample_rate:.3f} s < {min_short} s)'); continue
            pieces = [(0, wav)]
        else:
            pieces = [(k, wav[k * L:(k + 1) * L]) for k in range(n // L)]
            if n % L >= min_tail * sample_rate: pieces.append((n // L, wav[(n // L) * L:]))
        loud = [(k, p) for k, p in pieces if not is_silent(p, sample_rate)]
        stats['silent_pieces'] += len(pieces) - len(loud)
        if not loud: skip_log.add(rec.label, f'silent (no 50 ms frame above {SILENCE_DB:g} dBFS)'); continue
        if max_pieces and len(loud) > max_pieces:
            loud = [loud[i] for i in np.linspace(0, len(loud) - 1, max_pieces).round().astype(int)]
        stats['recordings'] += 1
        for k, p in loud:
            if max_seconds is not None and stats['seconds'] >= max_seconds: break
            path = out_dir / f'{rec.name}_{k}.wav'
            write_wav(path, p, sample_rate)
            stats['files'].append(path); stats['seconds'] += len(p) / sample_rate; stats['recording_of'][path] = rec.name
    return stats


def share_hours(available:dict, # source -> hours it can give
                total:float, # hours wanted in all
               ) -> dict: # source -> hours to take
    "Water-filling: equal shares; a source with less gives all it has and the rest is shared among the others."
    quota, left, todo = {}, total, sorted(available, key=lambda s: (available[s], s))
    while todo:
        share = left / len(todo)
        s = todo[0]
        if available[s] <= share: quota[s] = available[s]; left -= available[s]; todo.pop(0)
        else:
            for s in todo: quota[s] = share
            break
    return {s: quota[s] for s in sorted(available)}


# ---------------------------------------------------------------------------------------------------- packages
def installed(pkg:str) -> bool:
    try: r = subprocess.run(['dpkg-query', '-W', '-f=${Status}', pkg], capture_output=True, text=True)
    except FileNotFoundError: return False
    return r.returncode == 0 and 'install ok installed' in r.stdout

def package_files(pkg:str) -> list:
    "Regular files a Debian package installed (empty when it is not installed)."
    if not installed(pkg): return []
    r = subprocess.run(['dpkg', '-L', pkg], capture_output=True, text=True)
    return sorted(Path(l) for l in r.stdout.splitlines() if l.strip() and Path(l).is_file())

def package_recordings(pkg:str, exclude_dirs=()) -> list:
    "The audio files of a package as `Recording`s; archives (.wz, .zip) are opened and their audio members listed."
    files = package_files(pkg)
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTS
             and not any(p.is_relative_to(d) for d in exclude_dirs)]
    recs = recordings_from_paths(audio)
    for arc in (p for p in files if p.suffix.lower() in ('.wz', '.zip')):
        try:
            with zipfile.ZipFile(arc) as z:
                for m in sorted(z.namelist()):
                    if m.lower().endswith(AUDIO_EXTS):
                        recs.append(Recording(f'{arc}:{m}', slug(arc.stem + '-' + os.path.splitext(m)[0]), z.read(m)))
        except (zipfile.BadZipFile, OSError) as e: log(f'cannot open {arc}: {e}')
    return recs

def soundfont_path(name:str) -> Path|None:
    "The file of a SoundFont (by stem), found through its package."
    for p in sorted(package_files(SOUNDFONT_PACKAGES[name]), key=lambda p: ('/sounds/' not in str(p), str(p))):
        if p.stem == name and p.suffix.lower() in ('.sf2', '.sf3'): return p
    return None



# ---------------------------------------------------------------------------------------------------- music
def program_range(program:int) -> tuple: return PROGRAM_RANGE.get(program, FAMILY_RANGE[program // 8])

def music_notes(soundfont_name:str, # seeds the choice, so each SoundFont gets its own notes
                programs=range(128),
                per_program:int=12,
               ) -> list: # `Note`s
    "Notes spread over each program's range, with seeded velocities and lengths."
    notes = []
    for prog in programs:
        rng = np.random.default_rng(_seed('music', soundfont_name, prog))
        lo, hi = program_range(prog)
        pitches = np.linspace(lo, hi, per_program).round().astype(int)
        for p in pitches:
            notes.append(Note(0, prog, int(p), int(rng.choice([40, 64, 88, 112, 127])),
                              float(rng.choice([0.3, 0.6, 1.0, 1.5]))))
    return notes

def _write_clips(clips, names, out_dir:Path, skip_log:SkipLog, sources, dedupe:bool=False) -> dict:
    "Write the clips that are not silent (and, with `dedupe`, not bit-identical to one of the same label) as out_dir/label/fname."
    counts, silent, dups, seen, written = Counter(), Counter(), Counter(), set(), {}
    for i, (clip, (label, fname), src) in enumerate(zip(clips, names, sources)):
        if is_silent(clip): silent[label] += 1; skip_log.add(src, 'silent render'); continue
        if dedupe:
            key = (label, _sha1((np.clip(clip, -1, 1) * 32767).round().astype(np.int16).tobytes()))
            if key in seen: dups[label] += 1; continue
            seen.add(key)
        write_wav(out_dir / label / fname, clip); counts[label] += 1; written[i] = out_dir / label / fname
    return dict(counts=counts, silent=silent, duplicates=dups, written=written)

def _merge(a:dict, b:dict) -> dict: return {k: a.get(k, Counter()) + b[k] for k in b if k != 'written'}

def linked_groups(keys:dict, # unit -> the keys it holds (a sample, a file's hash)
                  same=(), # (key, key) pairs that are the same thing under two names
                 ) -> dict: # unit -> the sorted tuple of the units of its group
    "Groups of units that must not be split: units holding a key in common (directly or through `same`) are one group."
    parent = {}
    def find(x):
        while parent.setdefault(x, x) != x: parent[x] = parent[parent[x]]; x = parent[x]
        return x
    for u, ks in keys.items():
        for k in ks: parent[find(('key', k))] = find(('unit', u))
        find(('unit', u))
    for a, b in same: parent[find(('key', a))] = find(('key', b))
    members = defaultdict(list)
    for u in keys: members[find(('unit', u))].append(u)
    return {u: tuple(sorted(members[find(('unit', u))])) for u in keys}

def soundfont_groups(units:dict, # unit (a SoundFont, or 'SoundFont:kit') -> (SoundFont path, names of the samples it plays)
                    ) -> dict: # unit -> group name: the SoundFonts of its group, joined by '+'
    "Units playing the same recording are one group: the same sample of one SoundFont, or a sample of another that `shared_samples` matches."
    sfs = {u: (Path(path), u.split(':')[0]) for u, (path, _) in units.items()}
    files = sorted({sfs[u] for u in units})
    same = [((na, a), (nb, b)) for i, (pa, na) in enumerate(files) for pb, nb in files[i + 1:] for a, b in shared_samples(pa, pb)]
    groups = linked_groups({u: {(sfs[u][1], s) for s in names} for u, (_, names) in units.items()}, same)
    name = {g: '+'.join(sorted({u.split(':')[0] for u in g})) for g in set(groups.values())}
    clash = Counter(name.values())
    return {u: name[g] if clash[name[g]] == 1 else f'{name[g]}:{g[0].split(":", 1)[-1]}' for u, g in groups.items()}

def build_music(out:Path, soundfonts:dict, skip_log:SkipLog, per_program:int=12) -> tuple:
    "ROOT/music/{train,test}/<family>/ from `soundfonts` = {'train': {name: path}, 'test': {name: path}}; (report, {path: group})."
    presets = {n: soundfont_presets(p) for split in soundfonts.values() for n, p in split.items()}
    programs = {n: [p for p in range(128) if (0, p) in presets[n]] for n in presets}
    shared = {t: {b for r in soundfonts['train'].values() for _, b in shared_samples(r, tp)} for t, tp in soundfonts['test'].items()}
    left_out = {t: [p for p in programs[t] if preset_samples(presets[t], 0, p) & shared[t]] for t in shared}
    report = {'soundfonts': {s: sorted(v) for s, v in soundfonts.items()}, 'per_program': per_program,
              'test_samples_shared_with_train': {t: len(v) for t, v in shared.items()},
              'test_programs_left_out': left_out}    # they play a recording a training SoundFont has
    for t, ps in left_out.items():
        for p in ps: skip_log.add(f'{soundfonts["test"][t]}:program {p}', 'plays a recording that a training SoundFont has')
    plays = {n: (p, set().union(*(preset_samples(presets[n], 0, q) for q in programs[n] if q not in left_out.get(n, ()))))
             for split in soundfonts.values() for n, p in split.items()}
    group_of, groups = soundfont_groups(plays), {}
    for split in ('train', 'test'):
        res = {}
        for name, path in sorted(soundfonts[split].items()):
            t0, progs = time.time(), [q for q in programs[name] if q not in left_out.get(name, ())]
            for q in sorted(set(range(128)) - set(programs[name])): skip_log.add(f'{path}:program {q}', 'no such preset')
            notes = music_notes(name, progs, per_program)
            names = [(FAMILIES[n.program // 8], f'{name}_p{n.program:03d}_k{n.pitch:03d}_v{n.velocity:03d}_{i:02d}.wav')
                     for i, n in enumerate(notes)]
            srcs = [f'{Path(path).name}:program {n.program} key {n.pitch} velocity {n.velocity}' for n in notes]
            r = _write_clips(render_notes(path, notes), names, out / split, skip_log, srcs)
            groups.update({f: group_of[name] for f in r['written'].values()})
            res = _merge(res, r) if res else r
            log(f'music/{split}: {name} {sum(r["counts"].values())} clips, {sum(r["silent"].values())} silent '
                f'({time.time() - t0:.0f} s)')
        report[split] = dict(sorted(res['counts'].items()))
        report[f'{split}_silent_dropped'] = dict(sorted(res['silent'].items()))
    return report, groups


# ---------------------------------------------------------------------------------------------------- drums
def drum_kits(name:str, path) -> list:
    "[(bank, program, kit name, note map)] of a SoundFont: GM kits (bank 128, program < 48) or the avldrums kit."
    presets = soundfont_presets(path)
    if name in DRUM_TEST_SOUNDFONTS or name.endswith('_LV2'):
        return [(b, p, n, AVL_DRUM_NOTES) for (b, p), (n, _) in sorted(presets.items())]
    return [(b, p, n, GM_DRUM_NOTES) for (b, p), (n, _) in sorted(presets.items()) if b == 128 and p < 48]

def drum_notes(kit:tuple, keys:dict, per_group:int, seed) -> list:
    "[(group, Note)]: `per_group` hits per group, cycling through the group's notes the kit has, over velocities."
    bank, prog, _, notemap = kit
    out = []
    for g in DRUM_GROUPS:
        notes = [k for k in notemap[g] if k in keys]
        if not notes: continue
        vels = np.linspace(30, 127, per_group).round().astype(int)
        np.random.default_rng(_seed('drums', seed, g)).shuffle(vels)   # the same for every kit: equal kits, equal renders
        out += [(g, Note(bank, prog, notes[j % len(notes)], int(vels[j]), 1.0)) for j in range(per_group)]
    return out

def build_drums(out:Path, soundfonts:dict, skip_log:SkipLog, per_group:dict|None=None) -> tuple:
    "ROOT/drums/{train,test}/<group>/ from `soundfonts` = {'train': {name: path}, 'test': {name: path}}; (report, {path: group})."
    per_group = per_group or {'train': 12, 'test': 24}
    report = {'soundfonts': {s: sorted(v) for s, v in soundfonts.items()}, 'hits_per_kit_and_group': per_group,
              'kits': {}}
    hits, plays = {}, {}          # SoundFont -> [(drum group, kit name, Note)]; 'SoundFont:kit' -> (path, samples played)
    for split in ('train', 'test'):
        for name, path in sorted(soundfonts[split].items()):
            presets, hits[name] = soundfont_presets(path), []
            for kit in drum_kits(name, path):
                notes = drum_notes(kit, presets[(kit[0], kit[1])][1], per_group[split], split)
                hits[name] += [(g, kit[2], n) for g, n in notes]
                plays[f'{name}:{kit[2]}'] = (path, preset_samples(presets, kit[0], kit[1], {n.pitch for _, n in notes}))
    group_of, groups = soundfont_groups(plays), {}
    for split in ('train', 'test'):
        res = {}
        report['kits'][split] = [u for u in plays if u.split(':')[0] in soundfonts[split]]
        for name, path in sorted(soundfonts[split].items()):
            t0 = time.time()
            names = [(g, f'{name}_{slug(kit)}_k{n.pitch:03d}_v{n.velocity:03d}_{i:03d}.wav') for i, (g, kit, n) in enumerate(hits[name])]
            srcs = [f'{Path(path).name}:{kit} key {n.pitch} velocity {n.velocity}' for g, kit, n in hits[name]]
            r = _write_clips(render_notes(path, [n for *_, n in hits[name]]), names, out / split, skip_log, srcs, dedupe=True)
            groups.update({f: group_of[f'{name}:{hits[name][i][1]}'] for i, f in r['written'].items()})
            res = _merge(res, r) if res else r
            log(f'drums/{split}: {name} {sum(r["counts"].values())} hits, {sum(r["duplicates"].values())} duplicates, '
                f'{sum(r["silent"].values())} silent ({time.time() - t0:.0f} s)')
        report[split] = dict(sorted(res['counts'].items()))
        report[f'{split}_duplicates_dropped'] = dict(sorted(res['duplicates'].items()))
        report[f'{split}_silent_dropped'] = dict(sorted(res['silent'].items()))
    return report, groups


# ---------------------------------------------------------------------------------------------------- speech
def speech_files(voices_dir:Path, min_voices:int=MIN_VOICES) -> tuple:
    "({voice: {phrase: path}}, phrases that at least `min_voices` packs record)."
    voices = {v.name: {f.stem: f for f in sorted(v.iterdir()) if f.suffix.lower() in AUDIO_EXTS}
              for v in sorted(Path(voices_dir).iterdir()) if v.is_dir()}
    counts = Counter(p for v in voices.values() for p in v)
    return voices, sorted(p for p, c in counts.items() if c >= min_voices)

def test_voice_hashes(voices_dir:Path=HEDGEWARS_VOICES, test_voices=TEST_VOICES) -> set:
    "sha1 of every file of the test voices (kept out of train and the pool)."
    return {_sha1(f.read_bytes()) for v in test_voices if (Path(voices_dir) / v).is_dir()
            for f in sorted((Path(voices_dir) / v).iterdir()) if f.is_file()}

def build_speech(out:Path, voices_dir:Path, skip_log:SkipLog, test_voices=TEST_VOICES, min_voices:int=MIN_VOICES) -> tuple:
    "ROOT/speech/{train,test}/<phrase>/<voice>.wav: one class per shared phrase, test on unseen voices; (report, {path: group})."
    voices, phrases = speech_files(voices_dir, min_voices)
    missing = [v for v in test_voices if v not in voices]
    if missing: raise ValueError(f'test voices {missing} not in {voices_dir}')
    test_hashes = test_voice_hashes(voices_dir, test_voices)
    report = {'phrases': len(phrases), 'test_voices': list(test_voices),
              'train_voices': [v for v in voices if v not in test_voices], 'min_voices': min_voices}
    written, used = {}, defaultdict(set)      # path -> voice; voice -> sha1 of the files it gave
    for split in ('test', 'train'):
        counts, dropped = Counter(), 0
        for v in (v for v in voices if (v in test_voices) == (split == 'test')):
            for p in phrases:
                if p not in voices[v]: continue
                f = voices[v][p]; digest = _sha1(f.read_bytes())
                if split == 'train' and digest in test_hashes:
                    dropped += 1; skip_log.add(str(f), 'same bytes as a test-voice file'); continue
                try: wav = load_audio(f, SR).numpy()
                except AudioDecodeError as e: skip_log.add(str(f), e.reason); continue
                if is_silent(wav): skip_log.add(str(f), 'silent'); continue
                write_wav(out / split / p / f'{v}.wav', wav); counts[p] += 1
                written[out / split / p / f'{v}.wav'] = v; used[v].add(digest)
        report[split] = dict(sorted(counts.items()))
        if split == 'train': report['train_dropped_as_test_copies'] = dropped
    packs = linked_groups(used)              # packs that share a file (Classic, Default, Default_uk, ...) are one group
    return report, {f: '+'.join(packs[v]) for f, v in written.items()}


# ---------------------------------------------------------------------------------------------------- language
def language_split(word:str) -> str: return 'test' if zlib.crc32(word.encode()) % 10 < LANGUAGE_TEST_IN_10 else 'train'

def language_files(sounds_dir:Path=KTUBERLING_SOUNDS, languages=LANGUAGES) -> dict:
    "{word: {language: path}} for the words every language records."
    per = {l: {f.stem: f for f in sorted((Path(sounds_dir) / l).iterdir()) if f.suffix.lower() in AUDIO_EXTS}
           for l in languages if (Path(sounds_dir) / l).is_dir()}
    missing = [l for l in languages if l not in per]
    if missing: raise ValueError(f'languages {missing} not in {sounds_dir}')
    common = set.intersection(*(set(w) for w in per.values()))
    return {w: {l: per[l][w] for l in languages} for w in sorted(common)}

def language_hashes(sounds_dir:Path=KTUBERLING_SOUNDS) -> set:
    "sha1 of every audio file of the language task's source, of any language or split (all kept out of the pool)."
    return {_sha1(f.read_bytes()) for f in sorted(Path(sounds_dir).rglob('*')) if f.suffix.lower() in AUDIO_EXTS and f.is_file()}

def build_language(out:Path, sounds_dir:Path, skip_log:SkipLog, languages=LANGUAGES) -> tuple:
    "ROOT/language/{train,test}/<language>/<word>.wav: spoken-language identification, test on unseen words; (report, {path: group})."
    words = language_files(sounds_dir, languages)
    report = {'languages': list(languages), 'words': len(words),
              'test_words': sorted(w for w in words if language_split(w) == 'test')}
    counts, groups = {'train': Counter(), 'test': Counter()}, {}
    for w, files in words.items():
        split = language_split(w)
        for l, f in files.items():
            try: wav = load_audio(f, SR).numpy()
            except AudioDecodeError as e: skip_log.add(str(f), e.reason); continue
            if is_silent(wav): skip_log.add(str(f), 'silent'); continue
            write_wav(out / split / l / f'{w}.wav', wav); counts[split][l] += 1
            groups[out / split / l / f'{w}.wav'] = f'{l}-speaker'    # one speaker reads every word of a language
    report.update({s: dict(sorted(c.items())) for s, c in counts.items()})
    return report, groups


# ---------------------------------------------------------------------------------------------------- pool
def gm_piece_events(rng, t0:float, seconds:float,
                    kits:list, # drum kits (programs of bank 128) to choose from
                    programs=range(128), # the programs that may play (a role with none of its own uses any of these)
                   ) -> list:
    "Events of one random piece: a melody, chords and a bass line on random programs, and often a drum pattern."
    ev, beat = [], 60. / rng.integers(70, 161)
    key, minor = int(rng.integers(0, 12)), bool(rng.integers(0, 2))
    scale = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
    deg = lambda d: 12 * (d // 7) + scale[d % 7] + key
    pick = lambda cands: int(rng.choice([p for p in cands if p in programs] or list(programs)))
    progs = dict(melody=pick(range(128)), chords=pick([*range(0, 8), *range(16, 24), *range(48, 56), *range(88, 96)]),
                 bass=pick(range(32, 40)))
    for ch, role in enumerate(('melody', 'chords', 'bass')):
        ev += [(t0, 0xB0 | ch, 0, 0), (t0, 0xB0 | ch, 32, 0), (t0, 0xC0 | ch, progs[role])]
    end = t0 + seconds - 0.05
    t, d = t0, int(rng.integers(0, 7))
    while t < end:                                    # melody: a random walk on the scale, around C5
        dur = beat * float(rng.choice([0.5, 0.5, 1, 1, 1.5, 2]))
        d = int(np.clip(d + rng.integers(-2, 3), -5, 12))
        if rng.random() > 0.15:
            p = 60 + deg(d); ev += [(t, 0x90, p, int(rng.integers(60, 120))), (min(t + dur * 0.9, end), 0x80, p, 0)]
        t += dur
    t = t0
    while t < end:                                    # chords and bass: one triad per bar
        root = int(rng.choice([0, 3, 4, 5]))
        bar = min(4 * beat, end - t)
        for i in (0, 2, 4):
            p = 48 + deg(root + i); ev += [(t, 0x91, p, 70), (t + bar * 0.95, 0x81, p, 0)]
        for b in range(4):
            tb = t + b * beat
            if tb >= end: break
            p = 36 + deg(root + (4 if b == 2 else 0)); ev += [(tb, 0x92, p, 90), (min(tb + beat * 0.8, end), 0x82, p, 0)]
        t += 4 * beat
    if kits and rng.random() < 0.7:                   # drums on channel 10 with a random training kit
        ev.append((t0, 0xC9, int(rng.choice(kits))))
        t, i = t0, 0
        while t < end:
            hits = [42 if rng.random() < 0.8 else 46]
            if i % 4 == 0: hits.append(36)
            if i % 4 == 2: hits.append(38)
            if rng.random() < 0.08: hits.append(int(rng.choice([41, 45, 48, 49, 51])))
            for h in hits: ev += [(t, 0x99, h, int(rng.integers(60, 127))), (t + 0.1, 0x89, h, 0)]
            t += beat / 2; i += 1
    ev += [(t0 + seconds, 0xB0 | ch, 120, 0) for ch in (0, 1, 2, 9)]
    return ev

def render_gm_pieces(soundfont, name:str, count:int, out_dir:Path, skip_log:SkipLog, seconds:float=10., gap:float=0.1,
                     batch:int=60, avoid=frozenset()) -> dict:
    "`count` random 10 s pieces rendered with one SoundFont, written as out_dir/<name>_<k>.wav; no preset that plays a sample in `avoid`."
    presets = soundfont_presets(soundfont)
    ok = lambda b, p: (b, p) in presets and not preset_samples(presets, b, p) & avoid
    kits, programs = [p for p in range(48) if ok(128, p)], [p for p in range(128) if ok(0, p)]
    stats = dict(seconds=0., files=[], programs_left_out=[p for p in range(128) if (0, p) in presets and not ok(0, p)],
                 kits_left_out=[p for p in range(48) if (128, p) in presets and not ok(128, p)])
    L = int(round(seconds * SR))
    for lo in range(0, count, batch):
        ev, n = [], min(batch, count - lo)
        for i in range(n):
            ev += gm_piece_events(np.random.default_rng(_seed('pool', name, lo + i)), i * (seconds + gap), seconds, kits, programs)
        ev.append((n * (seconds + gap), 0xB0, 121, 0))
        wav = render_midi(soundfont, ev, gain=0.5)
        for i in range(n):
            s = int(round(i * (seconds + gap) * SR)); piece = wav[s:s + L]
            if is_silent(piece): skip_log.add(f'{Path(soundfont).name}:piece {lo + i}', 'silent render'); continue
            path = out_dir / f'{name}_{lo + i}.wav'
            write_wav(path, piece); stats['files'].append(path); stats['seconds'] += len(piece) / SR
    return stats

def build_pool(out:Path, sources:dict, skip_log:SkipLog, pool_hours:float=10., gm_soundfonts:dict|None=None,
               gm_fraction:float=0.1, exclude_hashes:set=frozenset(), max_pieces:int=6,
               test_soundfonts:dict|None=None) -> dict:
    "ROOT/pool/<source>/: `sources` = {source: [Recording]} shared by water-filling, plus GM renders of `gm_soundfonts` {name: path} that play no recording of `test_soundfonts` {name: path}."
    gm_soundfonts, test_soundfonts = gm_soundfonts or {}, test_soundfonts or {}
    if set(gm_soundfonts) & set(test_soundfonts): raise ValueError(f'{sorted(set(gm_soundfonts) & set(test_soundfonts))} are test SoundFonts')
    gm_hours = pool_hours * gm_fraction if gm_soundfonts else 0.
    avail = {s: sum(min(r.duration(), max_pieces * 10.) for r in recs) / 3600 for s, recs in sources.items()}
    quota = {}
    report = {'hours': {}, 'files': {}, 'recordings': {}, 'silent_pieces': 0, 'duplicates': 0, 'excluded_test_copies': 0,
              'quota_hours': quota,
              'available_hours': {s: round(a, 3) for s, a in avail.items()}}
    seen, left, todo = {}, pool_hours - gm_hours, sorted(sources, key=lambda s: (avail[s], s))
    while todo:   # smallest first; what a source falls short of its quota (short, silent, repeated files) goes to the rest
        q = share_hours({s: avail[s] for s in todo}, left)
        s = todo.pop(0); quota[s] = q[s]
        t0 = time.time()
        order = sorted(sources[s], key=lambda r: _sha1(f'{s}/{r.label}'.encode()))
        st = cut_recordings(order, out / s, 10., skip_log, max_seconds=quota[s] * 3600, max_pieces=max_pieces,
                            seen=seen, exclude_hashes=exclude_hashes)
        left -= st['seconds'] / 3600
        report['hours'][s], report['files'][s], report['recordings'][s] = st['seconds'] / 3600, len(st['files']), st['recordings']
        for k in ('silent_pieces', 'duplicates'): report[k] += st[k]
        report['excluded_test_copies'] += st['excluded']
        log(f'pool/{s}: {st["seconds"] / 3600:.2f} h of {quota[s]:.2f} h, {len(st["files"])} pieces from '
            f'{st["recordings"]} recordings ({time.time() - t0:.0f} s)')
    if gm_soundfonts:
        t0, n = time.time(), int(round(gm_hours * 360))
        names = sorted(gm_soundfonts)
        tot, report['gm_render_left_out'] = dict(seconds=0., files=[]), {}
        for j, name in enumerate(names):
            avoid = {a for t in test_soundfonts.values() for a, _ in shared_samples(gm_soundfonts[name], t)}
            st = render_gm_pieces(gm_soundfonts[name], name, n // len(names) + (j < n % len(names)), out / 'gm-renders', skip_log,
                                  avoid=avoid)
            tot['seconds'] += st['seconds']; tot['files'] += st['files']
            report['gm_render_left_out'][name] = {'samples_shared_with_test': len(avoid), 'programs': st['programs_left_out'],
                                                  'kits': st['kits_left_out']}
        report['hours']['gm-renders'], report['files']['gm-renders'] = tot['seconds'] / 3600, len(tot['files'])
        report['gm_render_soundfonts'] = names
        log(f'pool/gm-renders: {tot["seconds"] / 3600:.2f} h, {len(tot["files"])} pieces ({time.time() - t0:.0f} s)')
    for k in ('files', 'recordings'): report[k] = dict(sorted(report[k].items()))
    report['hours'] = {s: round(report['hours'][s], 3) for s in sorted(report['hours'], key=lambda s: (s == 'gm-renders', s))}
    report['quota_hours'] = {s: round(q, 3) for s, q in sorted(quota.items())}
    report['hours_total'] = round(sum(report['hours'].values()), 3)
    return report


# ---------------------------------------------------------------------------------------------------- env (optional)
def build_env(out:Path, recordings:list, skip_log:SkipLog, classes:int=12, min_files:int=10) -> tuple:
    "ROOT/env/{train,test}/<folder>/: the `classes` largest parent folders, a recording in four to test (path hash); (report, {path: group})."
    by = defaultdict(list)
    for r in recordings: by[slug(Path(r.label.split(':')[-1]).parent.name).lower()].append(r)
    keep = sorted((l for l in by if len(by[l]) >= min_files), key=lambda l: (-len(by[l]), l))[:classes]
    report, groups = {'classes': sorted(keep)}, {}
    for split in ('train', 'test'):
        counts = {}
        for l in sorted(keep):
            recs = [r for r in by[l] if (int(_sha1(r.label.encode())[:8], 16) % 4 == 0) == (split == 'test')]
            st = cut_recordings(recs, out / split / l, 10., skip_log, max_pieces=3)
            counts[l] = len(st['files']); groups.update(st['recording_of'])
        report[split] = counts
    return report, groups


# ---------------------------------------------------------------------------------------------------- groups, judging
CV_FOLDS = 5                       # a task allows grouped CV_FOLDS-fold cross-validation when every class is in this many groups
GROUP_UNIT = {'music': 'the SoundFont; SoundFonts that play the same recording (by sample data) are one group',
              'drums': 'the kit; kits that play the same recording (every kit of one SoundFont shares samples, and '
                       'SoundFonts can share recordings) are one group',
              'speech': 'the voice pack; packs that share a file (same bytes) are one group',
              'language': 'the speaker: ktuberling has one per language, so one group per class',
              'env': 'the source recording (its 10 s pieces)'}
NOT_JUDGED = {
    'language': 'one speaker per language (ktuberling-data), so the task measures speaker identity as much as language: '
                'log-mel mean+std scores 0.97-0.98. No installed package has several speakers in several languages: '
                'ktuberling tags several speakers only for ca (and partly da); the non-English hedgewars voice packs are '
                'one or two per language (es, pl, ru) with no common phrase text; fillets-ng-data-cs/-nl have two voices '
                'each (the two fish) but one recording production per language, two classes only, and both are pool '
                'sources. Reported, not judged.',
    'env': 'untested on the real 0ad-data package; the files of one folder may be takes of one session on both sides.'}

def write_groups(dest:Path, # a task's folder
                 groups:dict, # written file -> group
                ) -> dict: # the group summary for corpora.json
    "dest/groups.csv (`path,group`, path relative to the task folder, over train and test) and its summary."
    rows = sorted((Path(f).relative_to(dest).as_posix(), g) for f, g in groups.items())
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / 'groups.csv', 'w', newline='') as f:
        w = csv.writer(f); w.writerow(['path', 'group']); w.writerows(rows)
    per_class, sides = defaultdict(set), defaultdict(set)
    for rel, g in rows:
        split, label = rel.split('/')[:2]
        per_class[label].add(g); sides[g].add(split)
    least = min((len(v) for v in per_class.values()), default=0)
    return {'groups': len(sides), 'groups_per_split': {s: sum(s in v for v in sides.values()) for s in ('train', 'test')},
            'min_groups_per_class': least, f'grouped_{CV_FOLDS}fold': least >= CV_FOLDS,
            'groups_in_train_and_test': sorted(g for g, v in sides.items() if len(v) == 2)}

def judgement(task:str, report:dict) -> dict:
    "{'judged', 'judged_reason'}: a task is judged when no group is on both sides and nothing else makes it a weak yardstick."
    if task in NOT_JUDGED: return {'judged': False, 'judged_reason': NOT_JUDGED[task]}
    if report['groups_in_train_and_test']:
        return {'judged': False, 'judged_reason': f"groups {report['groups_in_train_and_test']} have clips in train and test"}
    why = f"no group ({GROUP_UNIT[task]}) has clips in both train and test"
    if task == 'music':
        why += ''.join(f"; {t} shares {n} sample(s) with the training SoundFonts, its programs that play one are left out: "
                       f"{report['test_programs_left_out'][t]}" for t, n in report['test_samples_shared_with_train'].items())
    return {'judged': True, 'judged_reason': why}


# ---------------------------------------------------------------------------------------------------- main
def _soundfonts(names) -> dict: return {n: p for n in names if (p := soundfont_path(n)) is not None}

TASK_SOUNDFONTS = {'music': (MUSIC_TRAIN_SOUNDFONTS, MUSIC_TEST_SOUNDFONTS), 'drums': (DRUM_TRAIN_SOUNDFONTS, DRUM_TEST_SOUNDFONTS)}

def unbuildable(task:str) -> str|None:
    "Why `task` cannot be built on this machine (None: it can), known before its old folder is replaced."
    if task in TASK_SOUNDFONTS:
        train, test = TASK_SOUNDFONTS[task]
        if not fluidsynth_available() or not _soundfonts(train) or not _soundfonts(test):
            return 'needs fluidsynth and a train and a test SoundFont'
    if task == 'speech' and not HEDGEWARS_VOICES.is_dir(): return 'hedgewars-data is not installed'
    if task == 'language' and not KTUBERLING_SOUNDS.is_dir(): return 'ktuberling-data is not installed'
    if task == 'env' and not installed('0ad-data'): return '0ad-data is not installed (1.4 GB; apt-get install -y 0ad-data to build it)'
    return None

def build_task(task:str, dest:Path, skip:SkipLog, pool_hours:float) -> tuple:
    "Build one task into `dest`: (report, {file written: its group})."
    if task == 'pool':
        exclude = [HEDGEWARS_VOICES / v for v in TEST_VOICES]
        sources = {p: package_recordings(p, exclude_dirs=exclude) for p in POOL_PACKAGES if installed(p)}
        tests = {**_soundfonts(MUSIC_TEST_SOUNDFONTS), **_soundfonts(DRUM_TEST_SOUNDFONTS)}
        report = build_pool(dest, sources, skip, pool_hours, _soundfonts(POOL_SOUNDFONTS) if fluidsynth_available() else {},
                            exclude_hashes=test_voice_hashes() | language_hashes(), test_soundfonts=tests)
        return {**report, 'excluded': POOL_EXCLUDED}, {}
    if task in TASK_SOUNDFONTS:
        train, test = TASK_SOUNDFONTS[task]
        return (build_music if task == 'music' else build_drums)(dest, {'train': _soundfonts(train), 'test': _soundfonts(test)}, skip)
    if task == 'speech': return build_speech(dest, HEDGEWARS_VOICES, skip)
    if task == 'language': return build_language(dest, KTUBERLING_SOUNDS, skip)
    return build_env(dest, package_recordings('0ad-data'), skip)

def build(out:Path, tasks, pool_hours:float=10.) -> dict:
    "Build the chosen tasks into `out`, then its manifest; returns the run's report (also merged into out/corpora.json)."
    out.mkdir(parents=True, exist_ok=True)
    t_start, report, skipped, seconds = time.time(), {}, 0, {}
    missing = sorted({p for t in tasks if t != 'env' for p in TASK_PACKAGES[t] if not installed(p)})
    if missing:
        log(f'WARNING: missing packages {missing}; what needs them is not built. Install them with:\n'
            f'    apt-get install -y {" ".join(APT_PACKAGES)}')
    if not fluidsynth_available(): log('WARNING: no fluidsynth command: no music, drums or GM renders (apt-get install -y fluidsynth)')
    for task in tasks:
        t0, dest, skip = time.time(), out / task, SkipLog()   # the task's own skip list, written into its folder
        if why := unbuildable(task): log(f'{task}: skipped, {why}'); continue
        log(f'building {task} ...')
        if dest.exists(): shutil.rmtree(dest)
        report[task], groups = build_task(task, dest, skip, pool_hours)
        if task != 'pool':
            report[task].update(group_unit=GROUP_UNIT[task], **write_groups(dest, groups))
            report[task].update(judgement(task, report[task]))
        seconds[task] = report[task]['seconds'] = round(time.time() - t0, 1)
        dest.mkdir(parents=True, exist_ok=True); skip.write(dest / 'skipped.csv')
        report[task]['skipped'] = len(skip); skipped += len(skip)
        log(f'{task} done in {seconds[task]:.0f} s, {len(skip)} sources skipped ({task}/skipped.csv)')
    manifest = write_manifest(out, TASKS, rehash=list(report))
    meta_path = out / 'corpora.json'
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.update(report)
    meta.update(sample_rate=SR, missing_packages=missing, last_build={'tasks': list(tasks), 'pool_hours': pool_hours,
                'seconds': round(time.time() - t_start, 1), 'per_task_seconds': seconds},
                install=f'apt-get install -y {" ".join(APT_PACKAGES)}', manifest={'digest': manifest['digest'], 'tasks': manifest['tasks']})
    if {'pool', 'music', 'drums'} & set(report): meta['soundfonts_shared_samples'] = soundfont_overlap()
    try: meta['disjoint'] = check_disjoint(out)
    except CorpusError as e: meta['disjoint'] = {'error': str(e)}
    meta_path.write_text(json.dumps(meta, indent=1, default=str))
    if 'error' in meta['disjoint']: raise CorpusError(meta['disjoint']['error'])
    log(f'done in {time.time() - t_start:.0f} s: {out}; {skipped} sources skipped (TASK/skipped.csv); digest {manifest["digest"]}')
    return meta

def soundfont_overlap() -> dict:
    "{'A|B': [samples of A, samples of B] that are the same recording} for every pair of installed SoundFonts used."
    sfs = _soundfonts(SOUNDFONT_PACKAGES)
    names, out = sorted(sfs), {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            m = shared_samples(sfs[a], sfs[b]); out[f'{a}|{b}'] = [len({x for x, _ in m}), len({y for _, y in m})]
    return out


@dashed_call_parse
def main(out:str=str(ROOT / 'experiments' / 'results' / 'corpora'), # ROOT of the corpora
         tasks:str='pool,music,drums,speech,language', # comma-separated: pool, music, drums, speech, language, env (env needs 0ad-data)
         pool_hours:float=10., # hours of audio in the pretraining pool
        ):
    "Build real-audio development corpora (a pretraining pool and labelled dev tasks) from Debian packages, offline."
    chosen = [t.strip() for t in tasks.split(',') if t.strip()]
    bad = [t for t in chosen if t not in TASKS]
    if bad or not chosen: fail('corpora.py', f"--tasks: unknown task {', '.join(bad) or '(none given)'}; choose from {','.join(TASKS)}")
    if not pool_hours > 0: fail('corpora.py', f'--pool-hours must be a positive number, got {pool_hours}')
    try: root = check_out(out)
    except InputError as e: fail('corpora.py', e)
    try: build(root, chosen, pool_hours)
    except CorpusError as e: sys.exit(f'corpora.py: {e}')
