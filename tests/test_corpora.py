"Tests of experiments/corpora.py on tiny trees it is given (no Debian data packages needed; fluidsynth optional)."
import csv, hashlib, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiojepa.sources import SkipLog
from experiments import corpora

REPO = Path(__file__).resolve().parents[1]
RATE = 22050    # sources at another rate than the 32 kHz output, so resampling is on the path


def noise(seconds, seed=0, rate=RATE, level=0.1):
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def tiny_tree(root:Path) -> dict:
    "A good 25.5 s WAV, a 0.7 s clip, a 0.3 s clip, a zero-length .ogg, garbage bytes and a silent WAV."
    root.mkdir(parents=True)
    files = dict(good=root / 'music' / 'long.wav', short=root / 'blip.flac', tiny=root / 'tick.wav',
                 empty=root / 'nl' / 'empty.ogg', garbage=root / 'garbage.wav', silent=root / 'quiet.wav')
    for f in files.values(): f.parent.mkdir(parents=True, exist_ok=True)
    good = noise(25.5)
    good[int(12 * RATE):int(19 * RATE)] = 0       # piece 1 of the 32 kHz output (10-20 s) is mostly silent: kept
    sf.write(files['good'], good, RATE)
    sf.write(files['short'], noise(0.7, 1), RATE)
    sf.write(files['tiny'], noise(0.3, 2), RATE)
    files['empty'].write_bytes(b'')
    files['garbage'].write_bytes(bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8)))
    sf.write(files['silent'], np.zeros(3 * RATE, np.float32), RATE)
    return files


def digest(folder:Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob('*.wav'))}


def test_cut_recordings_skips_bad_files_and_is_deterministic(tmp_path):
    files = tiny_tree(tmp_path / 'src')
    outs = []
    for run in range(2):
        out, skip = tmp_path / f'out{run}', SkipLog()
        recs = corpora.recordings_from_paths(files.values(), base=tmp_path / 'src')
        stats = corpora.cut_recordings(recs, out, 10., skip)
        skip.write(out / 'skipped.csv')
        outs.append((out, stats))
    out, stats = outs[0]
    names = sorted(p.name for p in out.rglob('*.wav'))
    # 25.5 s -> pieces 0, 1 (10 s each) and a 5.5 s tail (2); the 0.7 s clip is kept whole; 0.3 s is too short
    assert names == ['blip_0.wav', 'music-long_0.wav', 'music-long_1.wav', 'music-long_2.wav']
    for name, seconds in [('music-long_0.wav', 10.), ('music-long_1.wav', 10.), ('music-long_2.wav', 5.5), ('blip_0.wav', 0.7)]:
        info = sf.info(out / name)
        assert (info.samplerate, info.channels, info.subtype) == (32000, 1, 'PCM_16')
        assert info.frames == pytest.approx(seconds * 32000, abs=2), name
    assert stats['seconds'] == pytest.approx(26.2, abs=1e-3) and stats['recordings'] == 2
    with open(out / 'skipped.csv', newline='') as f: rows = {Path(r['id']).name: r['reason'] for r in csv.DictReader(f)}
    assert set(rows) == {'empty.ogg', 'garbage.wav', 'quiet.wav', 'tick.wav'}
    assert 'empty' in rows['empty.ogg'] and '0 bytes' in rows['empty.ogg']
    assert 'not audio' in rows['garbage.wav']
    assert rows['quiet.wav'].startswith('silent') and rows['tick.wav'].startswith('too short')
    assert digest(outs[0][0]) == digest(outs[1][0])       # a second run writes identical files


def test_cut_recordings_tail_silence_quota_and_duplicates(tmp_path):
    src = tmp_path / 'src'; src.mkdir()
    x = noise(20.5)                               # the 0.5 s tail is under 1 s: dropped
    x[int(9.9 * RATE):] = 0                       # the second piece is silent: dropped, counted
    sf.write(src / 'a.wav', x, RATE)
    shutil.copy(src / 'a.wav', src / 'b.wav')     # same bytes: used once
    sf.write(src / 'c.wav', noise(35, 5), RATE)
    skip = SkipLog()
    st = corpora.cut_recordings(sorted(src.iterdir()), tmp_path / 'out', 10., skip)
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['a_0.wav', 'c_0.wav', 'c_1.wav', 'c_2.wav', 'c_3.wav']
    assert st['silent_pieces'] == 1 and st['duplicates'] == 1 and list(skip.rows.values()) == [f"duplicate: same bytes as {src / 'a.wav'}"]
    # a quota stops early; max_pieces spreads the pieces kept over the recording; excluded hashes are never used
    excl = {hashlib.sha1((src / 'a.wav').read_bytes()).hexdigest()}
    st = corpora.cut_recordings(sorted(src.iterdir()), tmp_path / 'q', 10., SkipLog(), max_pieces=2,
                                exclude_hashes=excl)
    assert sorted(p.name for p in (tmp_path / 'q').iterdir()) == ['c_0.wav', 'c_3.wav'] and st['excluded'] == 2
    st = corpora.cut_recordings([src / 'c.wav'], tmp_path / 'r', 10., SkipLog(), max_seconds=15)
    assert len(st['files']) == 2


def test_share_hours_water_filling():
    q = corpora.share_hours({'a': 0.1, 'b': 5., 'c': 2., 'd': 0.5}, 3.)
    assert q == pytest.approx({'a': 0.1, 'b': 1.2, 'c': 1.2, 'd': 0.5})
    assert corpora.share_hours({'a': 1., 'b': 1.}, 5.) == {'a': 1., 'b': 1.}


def test_build_speech_splits_by_voice(tmp_path):
    voices = tmp_path / 'voices'
    phrases = {'V1': ['Hello', 'Oops', 'Only1'], 'V2': ['Hello', 'Oops'], 'T1': ['Hello', 'Oops']}
    for i, (v, ps) in enumerate(sorted(phrases.items())):
        for j, p in enumerate(ps):
            (voices / v).mkdir(parents=True, exist_ok=True)
            sf.write(voices / v / f'{p}.ogg', noise(0.8, 10 * i + j), RATE)
    shutil.copy(voices / 'T1' / 'Oops.ogg', voices / 'V2' / 'Oops.ogg')      # a test file copied into a train voice
    skip = SkipLog()
    rep = corpora.build_speech(tmp_path / 'speech', voices, skip, test_voices=('T1',), min_voices=2)
    assert rep['phrases'] == 2 and rep['test'] == {'Hello': 1, 'Oops': 1}
    assert rep['train'] == {'Hello': 2, 'Oops': 1} and rep['train_dropped_as_test_copies'] == 1
    assert sorted(p.relative_to(tmp_path / 'speech').as_posix() for p in (tmp_path / 'speech').rglob('*.wav')) == [
        'test/Hello/T1.wav', 'test/Oops/T1.wav', 'train/Hello/V1.wav', 'train/Hello/V2.wav', 'train/Oops/V1.wav']


def test_midi_file_is_a_standard_midi_file():
    data = corpora.midi_file([(0.5, 0x90, 60, 100), (0., 0xC0, 5), (1.0, 0x80, 60, 0)])
    assert data[:4] == b'MThd' and data[14:18] == b'MTrk'
    assert data.endswith(b'\x00\xff\x2f\x00')
    assert b'\x00\xc0\x05' in data and b'\x90\x3c\x64' in data and corpora._vlq(1000) == b'\x87\x68'


def test_command_line_accepts_dashes(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'experiments.corpora', '--out', str(tmp_path / 'c'), '--tasks', 'nonsense',
                        '--pool-hours', '1'], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and 'unknown tasks' in r.stderr


FLUIDR3 = Path('/usr/share/sounds/sf2/FluidR3_GM.sf2')

@pytest.mark.skipif(shutil.which('fluidsynth') is None or not FLUIDR3.exists(),
                    reason='needs the fluidsynth command and FluidR3_GM.sf2 (apt-get install fluidsynth fluid-soundfont-gm)')
def test_render_notes_with_fluidsynth():
    notes = [corpora.Note(0, 0, 60, 100, 0.5), corpora.Note(0, 43, 72, 100, 0.5), corpora.Note(128, 0, 36, 110, 1.)]
    clips = corpora.render_notes(FLUIDR3, notes, clip_seconds=1.)
    assert [len(c) for c in clips] == [32000] * 3
    assert not corpora.is_silent(clips[0]) and not corpora.is_silent(clips[2])
    assert corpora.is_silent(clips[1])            # FluidR3's contrabass has no sample above C3: a silent clip
    assert np.array_equal(clips[0], corpora.render_notes(FLUIDR3, notes[:1], clip_seconds=1.)[0])
    presets = corpora.soundfont_presets(FLUIDR3)
    assert presets[(128, 0)][0] == 'Standard' and 36 in presets[(128, 0)][1]


def test_language_task_splits_by_word_and_keeps_test_words_out_of_the_pool(tmp_path):
    sounds = tmp_path / 'ktuberling'
    words = ['ball', 'coat', 'eye', 'hat', 'nose', 'shoe', 'tie', 'umbrella']
    for i, lang in enumerate(('aa', 'bb', 'cc')):
        (sounds / lang).mkdir(parents=True)
        for j, w in enumerate(words + ([f'only_{lang}'] if lang != 'cc' else [])):   # a word one language lacks
            sf.write(sounds / lang / f'{w}.ogg', noise(0.8, seed=10 * i + j), RATE)
    (sounds / 'bb' / 'hat.ogg').write_bytes(b'')                                       # a broken file: skipped, listed
    skip = SkipLog()
    rep = corpora.build_language(tmp_path / 'out', sounds, skip, languages=('aa', 'bb', 'cc'))
    test_words = {w for w in words if corpora.language_split(w) == 'test'}
    assert 0 < len(test_words) < len(words) and rep['words'] == len(words) and set(rep['test_words']) == test_words
    for split in ('train', 'test'):
        for lang in ('aa', 'bb', 'cc'):
            got = {p.stem for p in (tmp_path / 'out' / split / lang).glob('*.wav')}
            want = {w for w in words if (w in test_words) == (split == 'test')} - ({'hat'} if lang == 'bb' else set())
            assert got == want, (split, lang)                                          # one class per language, no word on both sides
    assert [Path(id).name for id in skip.rows] == ['hat.ogg']
    hashes = corpora.language_test_hashes(sounds, ('aa', 'bb', 'cc'))
    assert len(hashes) == 3 * len(test_words)                                          # pool exclusion: every test file
    with pytest.raises(ValueError, match='dd'): corpora.build_language(tmp_path / 'x', sounds, skip, languages=('aa', 'dd'))


def test_build_writes_each_tasks_skipped_files_into_its_folder(tmp_path, monkeypatch):
    "A task's unusable sources are listed in TASK/skipped.csv (`id,reason`, as a run's), replaced with the task."
    sounds = tmp_path / 'ktuberling'
    for i, lang in enumerate(corpora.LANGUAGES):
        (sounds / lang).mkdir(parents=True)
        for j, w in enumerate(('ball', 'hat', 'tie')): sf.write(sounds / lang / f'{w}.ogg', noise(0.8, seed=10 * i + j), RATE)
    broken = sounds / corpora.LANGUAGES[0] / 'hat.ogg'
    broken.write_bytes(b'')
    monkeypatch.setattr(corpora, 'KTUBERLING_SOUNDS', sounds)
    for _ in range(2):                                       # a rebuild replaces the task's folder and its list
        meta = corpora.build(tmp_path / 'corpora', ['language'])
        with open(tmp_path / 'corpora' / 'language' / 'skipped.csv', newline='') as f: rows = list(csv.DictReader(f))
        assert [(r['id'], r['reason']) for r in rows] == [(str(broken), 'empty file (0 bytes)')]
        assert meta['language']['skipped'] == 1
    assert not (tmp_path / 'corpora' / 'skipped.csv').exists()
