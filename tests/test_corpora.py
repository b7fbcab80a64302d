"Tests of experiments/corpora.py and experiments/soundfonts.py on tiny trees they are given (no Debian data packages needed; fluidsynth and the SoundFonts optional)."
import csv, hashlib, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiojepa.sources import SkipLog
from experiments import corpora, soundfonts

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
    (voices / 'V3').mkdir()
    shutil.copy(voices / 'V1' / 'Hello.ogg', voices / 'V3' / 'Hello.ogg')   # two train packs sharing a file: one group
    sf.write(voices / 'V3' / 'Oops.ogg', noise(0.8, 99), RATE)
    skip = SkipLog()
    rep, groups = corpora.build_speech(tmp_path / 'speech', voices, skip, test_voices=('T1',), min_voices=2)
    assert rep['phrases'] == 2 and rep['test'] == {'Hello': 1, 'Oops': 1}
    assert rep['train'] == {'Hello': 3, 'Oops': 2} and rep['train_dropped_as_test_copies'] == 1
    got = {p.relative_to(tmp_path / 'speech').as_posix(): g for p, g in groups.items()}
    assert got == {'test/Hello/T1.wav': 'T1', 'test/Oops/T1.wav': 'T1', 'train/Hello/V1.wav': 'V1+V3', 'train/Hello/V2.wav': 'V2',
                   'train/Oops/V1.wav': 'V1+V3', 'train/Hello/V3.wav': 'V1+V3', 'train/Oops/V3.wav': 'V1+V3'}
    assert sorted(got) == sorted(p.relative_to(tmp_path / 'speech').as_posix() for p in (tmp_path / 'speech').rglob('*.wav'))
    summary = corpora.write_groups(tmp_path / 'speech', groups)
    assert summary == {'groups': 3, 'groups_per_split': {'train': 2, 'test': 1}, 'min_groups_per_class': 2,
                       'grouped_5fold': False, 'groups_in_train_and_test': []}
    with open(tmp_path / 'speech' / 'groups.csv', newline='') as f: rows = list(csv.DictReader(f))
    assert {r['path']: r['group'] for r in rows} == got and rows == sorted(rows, key=lambda r: r['path'])


def test_midi_file_is_a_standard_midi_file():
    data = soundfonts.midi_file([(0.5, 0x90, 60, 100), (0., 0xC0, 5), (1.0, 0x80, 60, 0)])
    assert data[:4] == b'MThd' and data[14:18] == b'MTrk'
    assert data.endswith(b'\x00\xff\x2f\x00')
    assert b'\x00\xc0\x05' in data and b'\x90\x3c\x64' in data and b'\x87\x68' in soundfonts.midi_file([(0.5, 0x90, 60, 1)])


def test_command_line_accepts_dashes(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'experiments.corpora', '--out', str(tmp_path / 'c'), '--tasks', 'nonsense',
                        '--pool-hours', '1'], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        'corpora.py: error: --tasks: unknown task nonsense; choose from pool,music,drums,speech,language,env']
    assert not (tmp_path / 'c').exists()


FLUIDR3 = Path('/usr/share/sounds/sf2/FluidR3_GM.sf2')

@pytest.mark.skipif(shutil.which('fluidsynth') is None or not FLUIDR3.exists(),
                    reason='needs the fluidsynth command and FluidR3_GM.sf2 (apt-get install fluidsynth fluid-soundfont-gm)')
def test_render_notes_with_fluidsynth():
    notes = [soundfonts.Note(0, 0, 60, 100, 0.5), soundfonts.Note(0, 43, 72, 100, 0.5), soundfonts.Note(128, 0, 36, 110, 1.)]
    clips = soundfonts.render_notes(FLUIDR3, notes, clip_seconds=1.)
    assert [len(c) for c in clips] == [32000] * 3
    assert not corpora.is_silent(clips[0]) and not corpora.is_silent(clips[2])
    assert corpora.is_silent(clips[1])            # FluidR3's contrabass has no sample above C3: a silent clip
    assert np.array_equal(clips[0], soundfonts.render_notes(FLUIDR3, notes[:1], clip_seconds=1.)[0])
    presets = soundfonts.soundfont_presets(FLUIDR3)
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
    rep, groups = corpora.build_language(tmp_path / 'out', sounds, skip, languages=('aa', 'bb', 'cc'))
    assert {p.parent.name + ':' + g for p, g in groups.items()} == {'aa:aa-speaker', 'bb:bb-speaker', 'cc:cc-speaker'}
    test_words = {w for w in words if corpora.language_split(w) == 'test'}
    assert 0 < len(test_words) < len(words) and rep['words'] == len(words) and set(rep['test_words']) == test_words
    for split in ('train', 'test'):
        for lang in ('aa', 'bb', 'cc'):
            got = {p.stem for p in (tmp_path / 'out' / split / lang).glob('*.wav')}
            want = {w for w in words if (w in test_words) == (split == 'test')} - ({'hat'} if lang == 'bb' else set())
            assert got == want, (split, lang)                                          # one class per language, no word on both sides
    assert [Path(id).name for id in skip.rows] == ['hat.ogg']
    hashes = corpora.language_hashes(sounds)
    assert len(hashes) == 3 * len(words) + 2              # pool exclusion: every file of every language
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
    # the task's groups (its speakers), its verdict, the manifest and the disjointness check come with every build
    lang = meta['language']
    assert (lang['groups'], lang['min_groups_per_class'], lang['grouped_5fold'], lang['judged']) == (5, 1, False, False)
    assert 'one speaker per language' in lang['judged_reason']
    assert (tmp_path / 'corpora' / 'language' / 'groups.csv').read_text().startswith('path,group\n')
    assert meta['manifest']['digest'] == corpora.corpus_digest(tmp_path / 'corpora')
    tests = sum(corpora.language_split(w) == 'test' for w in ('ball', 'hat', 'tie')) * 5 - (corpora.language_split('hat') == 'test')
    assert meta['disjoint'] == {'test_files': tests, 'pool_files': 0, 'train_files': 14 - tests}


def tiny_corpus(root:Path) -> dict:
    "ROOT with a pool, a task's train and test splits and its groups.csv: a few short noise WAVs."
    files = {'pool/src/a_0.wav': 0, 'pool/src/b_0.wav': 1, 'speech/train/hi/V1.wav': 2, 'speech/test/hi/T1.wav': 3,
             'music/train/piano/x.wav': 4, 'music/test/piano/y.wav': 5}
    for rel, seed in files.items(): corpora.write_wav(root / rel, noise(0.2, seed, rate=32000), 32000)
    (root / 'speech' / 'groups.csv').write_text('path,group\ntest/hi/T1.wav,T1\ntrain/hi/V1.wav,V1\n')
    return {rel: root / rel for rel in files}


def test_manifest_finds_changed_missing_and_extra_files(tmp_path):
    root = tmp_path / 'corpora'; files = tiny_corpus(root)
    with pytest.raises(corpora.CorpusError, match='no manifest.json'): corpora.check_manifest(root)
    m = corpora.write_manifest(root, corpora.TASKS)
    assert sorted(m['files']) == sorted([*files, 'speech/groups.csv']) and sorted(m['tasks']) == ['music', 'pool', 'speech']
    assert m['files']['pool/src/a_0.wav']['sha256'] == hashlib.sha256(files['pool/src/a_0.wav'].read_bytes()).hexdigest()
    assert m['tasks']['speech']['files'] == 2 and m['tasks']['speech']['bytes'] == sum(
        files[r].stat().st_size for r in files if r.startswith('speech/'))
    digest = corpora.corpus_digest(root)
    assert digest == m['digest'] == corpora.check_manifest(root, full=True)['digest'] and len(digest) == 64
    assert corpora.corpus_digest(root, ['speech']) != digest and corpora.corpus_digest(root, ['speech', 'music']) == \
        corpora.corpus_digest(root, ['music', 'speech'])
    with pytest.raises(corpora.CorpusError, match='describes no task drums'): corpora.check_manifest(root, ['drums'])
    f = files['speech/test/hi/T1.wav']; st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))                 # touched, same bytes: re-hashed and accepted
    assert corpora.corpus_digest(root) == digest
    data = bytearray(f.read_bytes()); data[-1] ^= 1; f.write_bytes(bytes(data))          # one bit, same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))                          # ... and the recorded mtime back
    corpora.check_manifest(root, ['speech'])                                 # the cheap check trusts size and mtime
    with pytest.raises(corpora.CorpusError, match='speech/test/hi/T1.wav changed'): corpora.check_manifest(root, full=True)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    with pytest.raises(corpora.CorpusError, match='speech/test/hi/T1.wav changed'): corpora.corpus_digest(root)
    corpora.check_manifest(root, ['music', 'pool'])                          # other tasks are still as built
    m = corpora.write_manifest(root, corpora.TASKS)                                         # a rebuild describes the corpus anew
    assert m['digest'] != digest and corpora.corpus_digest(root) == m['digest']
    files['music/test/piano/y.wav'].unlink()
    with pytest.raises(corpora.CorpusError, match='music/test/piano/y.wav is missing'): corpora.check_manifest(root)
    corpora.check_manifest(root, ['speech', 'pool'])
    corpora.write_wav(root / 'pool' / 'src' / 'c_0.wav', noise(0.2, 9, rate=32000), 32000)
    with pytest.raises(corpora.CorpusError, match='pool/src/c_0.wav is not in manifest.json'): corpora.check_manifest(root, ['pool'])


def test_check_disjoint_finds_test_bytes_in_the_pool_or_in_train(tmp_path):
    root = tmp_path / 'corpora'; files = tiny_corpus(root)
    shutil.copy(files['music/train/piano/x.wav'], root / 'speech' / 'train' / 'hi' / 'V2.wav')   # across tasks: allowed
    (root / 'speech' / 'groups.csv').write_text('path,group\ntest/hi/T1.wav,T1\ntrain/hi/V1.wav,V1\ntrain/hi/V2.wav,V2\n')
    corpora.write_manifest(root, corpora.TASKS)
    assert corpora.check_disjoint(root) == {'test_files': 2, 'pool_files': 2, 'train_files': 3}
    shutil.copy(files['speech/test/hi/T1.wav'], root / 'pool' / 'src' / 'c_0.wav')
    corpora.write_manifest(root, corpora.TASKS)
    with pytest.raises(corpora.CorpusError, match='pool/src/c_0.wav has the bytes of the test file speech/test/hi/T1.wav'):
        corpora.check_disjoint(root)
    (root / 'pool' / 'src' / 'c_0.wav').unlink()
    shutil.copy(files['music/test/piano/y.wav'], root / 'music' / 'train' / 'piano' / 'z.wav')
    corpora.write_manifest(root, corpora.TASKS)
    with pytest.raises(corpora.CorpusError, match='music/train/piano/z.wav has the bytes of the test file music/test/piano/y.wav'):
        corpora.check_disjoint(root)


def test_the_pool_holds_no_test_voice(tmp_path):
    "A pool source with a copy of a test voice's file: excluded by its bytes, so no pool WAV has a test WAV's bytes."
    voices, root = tmp_path / 'voices', tmp_path / 'corpora'
    for i, v in enumerate(('T1', 'V1')):
        (voices / v).mkdir(parents=True)
        for j, p in enumerate(('Hello', 'Oops')): sf.write(voices / v / f'{p}.ogg', noise(0.8, 10 * i + j), RATE)
    game = tmp_path / 'game'; game.mkdir()
    shutil.copy(voices / 'T1' / 'Hello.ogg', game / 'hello.ogg')             # the same recording shipped again
    sf.write(game / 'music.ogg', noise(12, 50), RATE)
    speech = corpora.build_speech(root / 'speech', voices, SkipLog(), test_voices=('T1',), min_voices=2)[1]
    corpora.write_groups(root / 'speech', speech)
    sources = {'game': corpora.recordings_from_paths(sorted(game.iterdir()))}
    corpora.build_pool(root / 'pool', sources, SkipLog(), pool_hours=1.)     # without the exclusion: the test clip is in the pool
    corpora.write_manifest(root, corpora.TASKS)
    with pytest.raises(corpora.CorpusError, match='pool/game/hello_0.wav has the bytes of the test file speech/test/Hello/T1.wav'):
        corpora.check_disjoint(root)
    shutil.rmtree(root / 'pool')
    rep = corpora.build_pool(root / 'pool', sources, SkipLog(), pool_hours=1.,
                             exclude_hashes=corpora.test_voice_hashes(voices, ('T1',)))
    corpora.write_manifest(root, corpora.TASKS)
    assert rep['excluded_test_copies'] == 1 and corpora.check_disjoint(root)['pool_files'] == 2
    pool = {hashlib.sha256(p.read_bytes()).digest() for p in (root / 'pool').rglob('*.wav')}
    assert pool and not pool & {hashlib.sha256(p.read_bytes()).digest() for p in (root / 'speech' / 'test').rglob('*.wav')}


def test_linked_groups():
    groups = corpora.linked_groups({'a': {1, 2}, 'b': {2}, 'c': {3}, 'd': {4}, 'e': set()}, same=[(3, 4)])
    assert groups == {'a': ('a', 'b'), 'b': ('a', 'b'), 'c': ('c', 'd'), 'd': ('c', 'd'), 'e': ('e',)}


def test_match_samples_finds_a_recording_at_another_rate_and_shift():
    rng = np.random.default_rng(0)
    t = np.arange(44100) / 44100
    rec = (np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t) + 0.3 * rng.standard_normal(len(t))).astype(np.float32)
    other = rng.standard_normal(44100).astype(np.float32)
    at_22k = np.fft.irfft(np.fft.rfft(rec)[:11026], 22050)                   # the same recording at 22.05 kHz ...
    shifted = np.concatenate([np.zeros(22), at_22k])[:22050]                 # ... starting 1 ms later
    fp = lambda x, r: (len(x) / r, soundfonts.fingerprint(x, r))
    a = {'rec': fp(rec, 44100), 'other': fp(other, 44100)}
    b = {'rec22': fp(shifted, 22050), 'noise': fp(rng.standard_normal(22050), 22050), 'short': fp(rec[:4410], 44100)}
    assert soundfonts.match_samples(a, b) == {('rec', 'rec22')}
    assert soundfonts.fingerprint(np.zeros(100), 8000) is None


SOUNDFONTS = Path('/usr/share/sounds/sf2')

@pytest.mark.skipif(not (SOUNDFONTS / 'TimGM6mb.sf2').exists() or not (SOUNDFONTS / 'Black_Pearl_4_LV2.sf2').exists(),
                    reason='needs TimGM6mb.sf2 and Black_Pearl_4_LV2.sf2 (apt-get install timgm6mb-soundfont avldrums.lv2-soundfont)')
def test_shared_samples_of_real_soundfonts(tmp_path):
    tim, pearl = SOUNDFONTS / 'TimGM6mb.sf2', SOUNDFONTS / 'Black_Pearl_4_LV2.sf2'
    assert soundfonts.shared_samples(tim, pearl) == set()
    assert len(soundfonts.shared_samples(pearl, pearl)) >= len(soundfonts.sample_fingerprints(str(pearl)))   # itself
    presets = soundfonts.soundfont_presets(tim)
    piano = soundfonts.preset_samples(presets, 0, 0)
    assert piano and soundfonts.preset_samples(presets, 0, 0, keys={60}) < piano
    # a unit per kit: kits of one SoundFont that play the same samples are one group
    groups = corpora.soundfont_groups({'TimGM6mb:Standard': (tim, soundfonts.preset_samples(presets, 128, 0)),
                                       'TimGM6mb:Room': (tim, soundfonts.preset_samples(presets, 128, 8)),
                                       'Black_Pearl_4_LV2:kit': (pearl, {'36-Pearl22Kick-1'})})
    assert groups == {'TimGM6mb:Standard': 'TimGM6mb', 'TimGM6mb:Room': 'TimGM6mb', 'Black_Pearl_4_LV2:kit': 'Black_Pearl_4_LV2'}
    # the pool's renders leave out every preset that plays a sample to avoid
    st = corpora.render_gm_pieces(tim, 'TimGM6mb', 0, tmp_path, SkipLog(), avoid=piano)
    assert 0 in st['programs_left_out'] and 40 not in st['programs_left_out'] and st['files'] == []
