"""Integration tests for audiojepa.data: files on disk, shards, HDF5, Hugging Face datasets, several worker processes.

Every test writes its own data under tmp_path; the AudioSet CSV test reads the shared metadata if it is present.
"""
import io
import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds

from audiojepa.audioset import AUDIOSET_URLS, audioset_file, is_segments_csv, read_audioset_segments, read_class_labels
from audiojepa.data import check_readable, has_label_folders, make_loader, open_labelled, open_source
from audiojepa.sources import AudioSetSource, FolderSource, HDF5Source, ManifestSource, NoAudioError, write_skipped_csv
from audiojepa.streams import HFSource, HFStreamSource, WebDatasetSource
from audiojepa.synthetic import SyntheticSounds

SR = 16000
AUDIOSET = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'audioset'


def tone(i, seconds=0.5, channels=1, rate=SR):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * (220 + 55 * i) * t)
    return np.repeat(x[:, None], channels, 1) if channels > 1 else x


def encoded(x, fmt='FLAC', rate=SR):
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt)
    return buf.getvalue()


def ids_of(loader):
    return [i for batch in loader for i in batch['id']]


# ---------------------------------------------------------------- bad files among good ones

def write_bad_files(root):
    "Each kind of broken input the issue names; returns {relative path: expected words in the reason}."
    (root / 'text.wav').write_text('hello, I am not a wave file\n')
    (root / 'empty.wav').write_bytes(b'')
    sf.write(root / 'zero_length.wav', np.zeros(0), SR)
    (root / 'corrupt.flac').write_bytes(b'fLaC' + os.urandom(3000))
    good = encoded(tone(0, 1.0), 'WAV')
    (root / 'truncated.wav').write_bytes(good[:len(good) // 3])
    nan = tone(1).astype(np.float32)
    nan[100] = np.nan
    sf.write(root / 'nan.wav', nan, SR, subtype='FLOAT')
    inf = tone(2).astype(np.float32)
    inf[5] = np.inf
    sf.write(root / 'inf.wav', inf, SR, subtype='FLOAT')
    (root / 'dangling.wav').symlink_to(root / 'no_such_target.wav')
    return {'text.wav': 'not audio', 'empty.wav': 'empty', 'zero_length.wav': 'zero-length', 'corrupt.flac': '',
            'truncated.wav': 'truncated', 'nan.wav': 'NaN', 'inf.wav': 'Inf', 'dangling.wav': ''}


def test_folder_of_bad_files_skips_each_once_and_keeps_the_good(tmp_path, caplog):
    root = tmp_path / 'audio'
    (root / 'sub').mkdir(parents=True)
    sf.write(root / 'a.wav', tone(0), SR)
    sf.write(root / 'sub' / 'b.ogg', tone(1), SR)
    sf.write(root / 'six_channels_96k.flac', tone(2, channels=6, rate=96000), 96000)
    sf.write(root / 'stereo_8k.wav', tone(3, channels=2, rate=8000), 8000)
    bad = write_bad_files(root)
    source = FolderSource(root, sample_rate=SR, clip_seconds=0.5, crop='start')
    assert len(source) == 4 + len(bad)

    with caplog.at_level(logging.WARNING, logger='audiojepa.sources'):
        items = {source.ids[i]: source[i] for i in range(len(source))}
    errors = {k: it['error'] for k, it in items.items() if 'error' in it}
    assert set(errors) == set(bad)
    for name, words in bad.items(): assert words in errors[name], (name, errors[name])
    # one warning line per bad file, naming it
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == len(bad)
    for name in bad: assert sum(name in line for line in lines) == 1
    assert all('\n' not in line for line in lines)
    # multi-channel and unusual rates are valid audio, downmixed and resampled
    six = items['six_channels_96k.flac']
    assert six['audio'].shape == (SR // 2,) and not six['padding_mask'].any()
    np.testing.assert_allclose(six['audio'][100:4000].numpy(), tone(2)[100:4000], atol=2e-3)  # resampler edges aside

    loader = make_loader(source, batch_size=4, num_workers=2, seed=0)
    assert sorted(ids_of(loader)) == ['a.wav', 'six_channels_96k.flac', 'stereo_8k.wav', 'sub/b.ogg']
    assert set(loader.skip_log.rows) == set(bad)
    ids_of(loader)  # a second epoch lists each file once
    assert len(loader.skip_log) == len(bad)
    rows = (write_skipped_csv(tmp_path / 'skipped.csv', loader.skip_log.rows)).read_text().splitlines()
    assert rows[0] == 'id,reason' and len(rows) == 1 + len(bad)


def test_a_source_with_no_readable_audio_ends_in_one_clear_error(tmp_path):
    write_bad_files(tmp_path)
    source = FolderSource(tmp_path, sample_rate=SR)
    with pytest.raises(NoAudioError) as err:
        for _ in make_loader(source, batch_size=3): pass
    assert '\n' not in str(err.value) and 'no readable audio' in str(err.value)
    with pytest.raises(NoAudioError): check_readable(source)
    (tmp_path / 'empty_dir').mkdir()
    with pytest.raises(NoAudioError, match='no audio files'): FolderSource(tmp_path / 'empty_dir')


# ---------------------------------------------------------------- manifests

def test_manifest_csv_and_jsonl_resolve_paths_against_their_folder(tmp_path, monkeypatch):
    data = tmp_path / 'data'
    (data / 'clips').mkdir(parents=True)
    for i in range(3): sf.write(data / 'clips' / f'{i}.flac', tone(i), SR)
    (data / 'train.csv').write_text('path,labels\nclips/0.flac,"dog,bark"\nclips/1.flac,cat\n'
                                    f'{data / "clips" / "2.flac"},\n')
    (data / 'train.jsonl').write_text('{"path": "clips/0.flac", "labels": ["dog", "bark"]}\n'
                                      '{"path": "clips/1.flac", "labels": "cat"}\n')
    (data / 'plain.csv').write_text('clips/0.flac\nclips/1.flac,cat\n')
    monkeypatch.chdir(tmp_path)  # paths must not depend on the working directory
    csv_source = ManifestSource('data/train.csv', sample_rate=SR)
    assert csv_source.classes == ['bark', 'cat', 'dog']
    assert csv_source[0]['target'].tolist() == [1, 0, 1] and csv_source[2]['target'].sum() == 0
    assert 'error' not in csv_source[2]  # absolute path
    jsonl_source = ManifestSource('data/train.jsonl', sample_rate=SR, classes=csv_source.classes)
    assert jsonl_source[1]['target'].tolist() == [0, 1, 0]
    assert ManifestSource('data/plain.csv', sample_rate=SR)[1]['target'].tolist() == [1]
    with pytest.raises(ValueError, match=r"train\.csv line 2: unknown label id 'bark'"):
        ManifestSource('data/train.csv', classes=['cat', 'dog'])
    (data / 'broken.jsonl').write_text('{"path": "clips/0.flac"}\n{not json\n')
    with pytest.raises(ValueError, match='line 2: not JSON'): ManifestSource(data / 'broken.jsonl')


# ---------------------------------------------------------------- AudioSet

@pytest.mark.skipif(not AUDIOSET.exists(), reason='shared AudioSet metadata not present')
def test_audioset_reader_on_the_balanced_train_csv():
    mids, names = read_class_labels(AUDIOSET / 'class_labels_indices.csv')
    assert len(mids) == 527 and mids[0] == '/m/09x0r' and names[0] == 'Speech'
    rows = read_audioset_segments(AUDIOSET / 'balanced_train_segments.csv', mids)
    assert len(rows) == 22160 and len({r[0] for r in rows}) == 22160
    assert rows[0] == ('--PJHxphWEs', 30.0, 40.0, [0, mids.index('/t/dd00088')])
    assert sum(len(r[3]) for r in rows) == 52882  # num_positive_labels in the file's header
    assert len({c for r in rows for c in r[3]}) == 527
    assert all(r[2] - r[1] <= 10.0 + 1e-6 for r in rows)


def write_audioset_csvs(root, ytids):
    (root / 'class_labels_indices.csv').write_text('index,mid,display_name\n0,/m/a,"A"\n1,/m/b,"B, or b"\n2,/m/c,"C"\n')
    lines = ['# Segments csv created for a test', f'# num_ytids={len(ytids)}', '# YTID, start_seconds, end_seconds, positive_labels']
    lines += [f'{y}, {10 * i:.3f}, {10 * i + 10:.3f}, "/m/{"abc"[i % 3]},/m/{"abc"[(i + 1) % 3]}"' for i, y in enumerate(ytids)]
    (root / 'segments.csv').write_text('\n'.join(lines) + '\n')


def test_audioset_source_from_ytid_named_files_and_from_panns_hdf5(tmp_path):
    ytids = ['-0Aa_bB-cC1', 'Yxyzxyzxyz2', 'abcdefghij3', 'missingmiss']
    write_audioset_csvs(tmp_path, ytids)
    audio = tmp_path / 'audio'
    (audio / 'part').mkdir(parents=True)
    sf.write(audio / f'Y{ytids[0]}.wav', tone(0), SR)                  # 'Y' prefix
    sf.write(audio / f'{ytids[1]}.flac', tone(1), SR)                  # a YTID starting with Y, no prefix
    sf.write(audio / 'part' / f'{ytids[2]}_20.000_30.000.ogg', tone(2), SR)   # times appended, nested
    source = AudioSetSource(tmp_path / 'segments.csv', audio_dir=audio, sample_rate=SR, clip_seconds=0.5)
    assert source.ids == ytids[:3] and source.missing == ['missingmiss']
    assert source.display_names[1] == 'B, or b'
    assert [source[i]['target'].tolist() for i in range(3)] == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    np.testing.assert_allclose(source[2]['audio'].numpy(), tone(2), atol=2e-2)   # Vorbis is lossy

    with h5py.File(tmp_path / 'segments.h5', 'w') as f:
        f['audio_name'] = np.array([f'Y{y}.wav'.encode() for y in ytids[:3]])
        f['waveform'] = np.stack([(tone(i) * 32767).astype(np.int16) for i in range(3)])
        f['target'] = np.zeros((3, 3), bool)
    from_h5 = open_source(tmp_path / 'segments.csv', hdf5=tmp_path / 'segments.h5', file_sample_rate=SR,
                          sample_rate=SR, clip_seconds=0.5)
    assert isinstance(from_h5, AudioSetSource) and from_h5.ids == ytids[:3]
    assert from_h5[1]['target'].tolist() == [0, 1, 1]   # targets come from the CSV
    np.testing.assert_allclose(from_h5[1]['audio'].numpy(), tone(1), atol=1e-4)

    (tmp_path / 'bad.csv').write_text('# a\n# b\n# c\nzzzzzzzzzzz, 0.000, 10.000, "/m/a,/m/zz"\n')
    with pytest.raises(ValueError, match=r"bad\.csv line 4: unknown label id '/m/zz'"):
        AudioSetSource(tmp_path / 'bad.csv', tmp_path / 'class_labels_indices.csv', audio_dir=audio)
    (tmp_path / 'no_audio').mkdir()
    with pytest.raises(NoAudioError, match='none of the 4 segments'):
        AudioSetSource(tmp_path / 'segments.csv', audio_dir=tmp_path / 'no_audio')


def test_audioset_files_come_from_the_option_then_beside_then_the_cache_and_are_never_downloaded(tmp_path, monkeypatch):
    "The one rule of `audioset_file`, as the AudioSet source follows it; a file found nowhere is one line naming where it was looked for."
    cache = tmp_path / 'cache'
    monkeypatch.setenv('AUDIOJEPA_CACHE', str(cache))
    fetched = []
    monkeypatch.setattr('urllib.request.urlretrieve', lambda *a, **k: fetched.append(a))
    write_audioset_csvs(tmp_path, ['aaaaaaaaaaa'])
    (tmp_path / 'segments').mkdir(); sf.write(tmp_path / 'segments' / 'Yaaaaaaaaaaa.wav', tone(0), SR)
    segments, beside = tmp_path / 'segments.csv', tmp_path / 'class_labels_indices.csv'
    assert audioset_file('class_labels_indices.csv', tmp_path / 'mine.csv', segments) == tmp_path / 'mine.csv'   # given: as it is
    assert audioset_file('class_labels_indices.csv', None, segments) == beside
    cached = cache / 'audioset' / 'class_labels_indices.csv'
    cached.parent.mkdir(parents=True); cached.write_text('index,mid,display_name\n0,/m/a,A\n1,/m/b,B\n2,/m/c,C\n3,/m/d,D\n')
    assert audioset_file('class_labels_indices.csv', None, segments) == beside                # beside comes before the cache
    beside.unlink()
    assert audioset_file('class_labels_indices.csv', None, segments) == cached
    assert AudioSetSource(segments, sample_rate=SR).classes == ['/m/a', '/m/b', '/m/c', '/m/d']
    cached.unlink()
    expected = (f"no class_labels_indices.csv: not given (class_labels_csv=), not beside {segments}, not in the cache "
                f"{cache / 'audioset'}; download it from {AUDIOSET_URLS['class_labels_indices.csv']} into that cache")
    with pytest.raises(FileNotFoundError) as err: AudioSetSource(segments, sample_rate=SR)
    assert str(err.value) == expected
    with pytest.raises(FileNotFoundError) as err: open_source(segments, sample_rate=SR)
    assert str(err.value) == expected and not fetched


def test_a_segments_csv_is_told_from_a_manifest_by_its_first_line(tmp_path):
    write_audioset_csvs(tmp_path, ['aaaaaaaaaaa'])
    (tmp_path / 'manifest.csv').write_text('path,labels\na.wav,dog\n')
    (tmp_path / 'audio.csv').write_bytes(encoded(tone(0), 'WAV'))
    assert [is_segments_csv(tmp_path / n) for n in ('segments.csv', 'manifest.csv', 'audio.csv', 'nowhere.csv')] == [True, False, False, False]
    assert not is_segments_csv(tmp_path) and not is_segments_csv(tmp_path / 'class_labels_indices.csv')


# ---------------------------------------------------------------- labelled data

def write_labelled(root, labels, n=2):
    "`root/<label>/<label><i>.wav`, n tones per label."
    for label in labels:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n): sf.write(root / label / f'{label}{i}.wav', tone(i), SR)
    return root


def test_every_labelled_layout_opens_to_the_classes_and_files_its_source_has(tmp_path):
    "`open_labelled` gives each layout the classes, ids and labels of the source opened directly, in the training order."
    folds = write_labelled(tmp_path / 'folds', ('dog', 'cat', 'cow'))
    data, direct = open_labelled(folds, SR), FolderSource(folds, labels='dirs', sample_rate=SR, crop='full')
    assert (data.layout, data.test, data.classes) == ('folds', None, ['cat', 'cow', 'dog'])
    assert (data.train.ids, data.train.labels, data.train.crop, data.train.sample_rate) == (direct.ids, direct.labels, 'full', SR)

    split = tmp_path / 'split'
    write_labelled(split / 'train', ('dog', 'cat', 'cow')); write_labelled(split / 'test', ('dog', 'cow'), n=1)
    data = open_labelled(split, SR)
    assert (data.layout, data.classes, data.test.classes) == ('split', ['cat', 'cow', 'dog'], ['cat', 'cow', 'dog'])
    assert (data.train.ids, data.test.ids, data.test.labels) == (direct.ids, ['cow/cow0.wav', 'dog/dog0.wav'], [[1], [2]])
    apart = open_labelled(folds, SR, test=split / 'test')        # the same test set, given apart
    assert (apart.layout, apart.test.ids, apart.test.labels) == ('folds', data.test.ids, data.test.labels)

    (tmp_path / 'clips.csv').write_text('path,labels\nfolds/dog/dog0.wav,dog\nfolds/cat/cat0.wav,"cat,dog"\n')
    data = open_labelled(tmp_path / 'clips.csv', SR)
    assert (data.layout, data.classes, data.train.ids, data.train.labels) == \
           ('source', ['cat', 'dog'], ['folds/dog/dog0.wav', 'folds/cat/cat0.wav'], [[1], [0, 1]])

    (tmp_path / 'as' / 'segments').mkdir(parents=True)
    write_audioset_csvs(tmp_path / 'as', ['aaaaaaaaaaa', 'bbbbbbbbbbb'])
    for i, y in enumerate(['aaaaaaaaaaa', 'bbbbbbbbbbb']): sf.write(tmp_path / 'as' / 'segments' / f'Y{y}.wav', tone(i), SR)
    data = open_labelled(tmp_path / 'as' / 'segments.csv', SR)
    assert (data.layout, data.classes, data.train.ids, data.train.labels) == \
           ('source', ['/m/a', '/m/b', '/m/c'], ['aaaaaaaaaaa', 'bbbbbbbbbbb'], [[0, 1], [1, 2]])

    with h5py.File(tmp_path / 'clips.h5', 'w') as f:
        f['audio_name'], f['waveform'] = np.array([b'a.wav', b'b.wav']), (np.stack([tone(0), tone(1)]) * 32767).astype(np.int16)
        f['target'] = np.eye(2, dtype=bool)
    assert open_labelled(tmp_path / 'clips.h5', SR, file_sample_rate=SR).classes == ['0', '1']

    write_shards(tmp_path / 'wds', 2, 2)
    shards = open_labelled(str(tmp_path / 'wds' / 'shard-{0000..0001}.tar'), SR)
    assert (shards.layout, shards.classes) == ('source', ['even', 'mod3_0', 'mod3_1', 'mod3_2', 'odd'])
    named = open_labelled(str(tmp_path / 'wds' / 'shard-{0000..0001}.tar'), SR, classes=['even', 'odd', 'mod3_0', 'mod3_1', 'mod3_2'])
    assert named.classes == ['even', 'odd', 'mod3_0', 'mod3_1', 'mod3_2']   # given: the shards are not scanned

    synthetic = SyntheticSounds(n_clips=4)
    assert open_labelled(synthetic, SR).train is synthetic and open_labelled(synthetic, SR).classes == synthetic.classes


@pytest.mark.parametrize('tree, test, message', [
    (['train/dog/a.wav', 'test/dog/b.wav', 'cat/c.wav'], None, "mixes the split folders train/ and test/ with the label folders ['cat']"),
    (['train/dog/a.wav', 'train/cat/b.wav'], None, 'has a train/ folder but no test/ folder'),
    (['dog/train/a.wav', 'dog/test/b.wav', 'cat/c.wav'], None, 'holds train/test folders; put the split at the top'),
    (['a.wav'], None, 'has no label folders'),
    (['drums/kick/a.wav', 'drums/snare/b.wav'], None, 'has a single label folder, drums/'),
    (['train/dog/a.wav', 'train/cat/b.wav', 'test/cow/c.wav'], None, "the classes ['cow'] have test clips"),
    (['train/dog/a.wav', 'train/cat/b.wav', 'test/dog/c.wav'], ['dog/d.wav'], 'holds its own train/ and test/ split'),
    (['dog/a.wav', 'cat/b.wav'], ['cow/c.wav'], "unknown label id 'cow'"),
])
def test_labelled_folders_that_cannot_be_used_are_one_clear_error(tmp_path, tree, test, message):
    def make(root, paths):
        for p in paths: (root / p).parent.mkdir(parents=True, exist_ok=True); sf.write(root / p, tone(0), SR)
        return root
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
        open_labelled(make(tmp_path / 'data', tree), SR, test=None if test is None else make(tmp_path / 'test', test))


def test_labelled_sources_that_cannot_be_used_are_one_clear_error(tmp_path):
    (tmp_path / 'a.wav').touch()
    (tmp_path / 'unlabelled.csv').write_text('path\na.wav\n')
    (tmp_path / 'one.csv').write_text('path,labels\na.wav,dog\n')
    with pytest.raises(ValueError, match=r'unlabelled\.csv has no labels'): open_labelled(tmp_path / 'unlabelled.csv', SR)
    with pytest.raises(ValueError, match=r"one\.csv has a single class, 'dog'"): open_labelled(tmp_path / 'one.csv', SR)
    assert open_labelled(tmp_path / 'one.csv', SR, min_classes=1).classes == ['dog']
    with pytest.raises(FileNotFoundError, match='does not exist'): open_labelled(tmp_path / 'nowhere', SR)


def test_a_folder_is_labelled_by_its_sub_folders_when_its_audio_all_sits_in_them(tmp_path):
    write_labelled(tmp_path / 'labelled', ('dog',))
    (tmp_path / 'labelled' / 'notes.txt').write_text('not audio, not a class')
    write_labelled(tmp_path / 'mixed', ('dog',)); sf.write(tmp_path / 'mixed' / 'loose.wav', tone(0), SR)
    (tmp_path / 'empty').mkdir()
    assert [has_label_folders(tmp_path / n) for n in ('labelled', 'mixed', 'empty', 'nowhere')] == [True, False, False, False]


# ---------------------------------------------------------------- HDF5

def test_hdf5_round_trip_in_panns_layout_with_worker_processes(tmp_path):
    waves = np.stack([tone(i) for i in range(6)])
    waves[3, 10] = 0  # still valid
    with h5py.File(tmp_path / 'clips.h5', 'w') as f:
        f['audio_name'] = np.array([f'Y{i:011d}.wav'.encode() for i in range(6)])
        f['waveform'] = (waves * 32767).astype(np.int16)
        f['target'] = np.eye(6, 4, dtype=bool)
    source = HDF5Source(tmp_path / 'clips.h5', sample_rate=SR, clip_seconds=0.5, classes=list('abcd'), file_sample_rate=SR)
    assert len(source) == 6 and source.classes == list('abcd')
    assert source[1]['target'].tolist() == [0, 1, 0, 0] and source[5]['target'].sum() == 0
    np.testing.assert_allclose(source[4]['audio'].numpy(), waves[4], atol=1e-4)
    loader = make_loader(source, batch_size=2, num_workers=2, shuffle=True, seed=3)
    assert sorted(ids_of(loader)) == sorted(source.ids)
    resampled = HDF5Source(tmp_path / 'clips.h5', sample_rate=8000, clip_seconds=0.5, file_sample_rate=SR)
    assert resampled[0]['audio'].shape == (4000,) and resampled.classes == ['0', '1', '2', '3']

    with h5py.File(tmp_path / 'float.h5', 'w') as f:
        f['audio_name'] = np.array([b'ok', b'nan'])
        f['waveform'] = np.stack([tone(0), np.full(SR // 2, np.nan)]).astype(np.float32)
        f.attrs['sample_rate'] = SR
    floats = HDF5Source(tmp_path / 'float.h5', sample_rate=SR)
    assert 'target' not in floats[0] and 'NaN' in floats[1]['error']
    with pytest.raises(ValueError, match='not a PANNs-style HDF5'):
        with h5py.File(tmp_path / 'other.h5', 'w') as f: f['x'] = np.zeros(3)
        HDF5Source(tmp_path / 'other.h5')


# ---------------------------------------------------------------- webdataset

def write_shards(root, n_shards, per_shard, label_member='json'):
    root.mkdir(parents=True, exist_ok=True)
    keys = []
    for s in range(n_shards):
        with wds.TarWriter(str(root / f'shard-{s:04d}.tar')) as sink:
            for j in range(per_shard):
                n = s * per_shard + j
                sample = {'__key__': f'clip{n:05d}', 'flac': encoded(tone(n % 7))}
                if label_member == 'json': sample['json'] = {'labels': ['odd' if n % 2 else 'even', f'mod3_{n % 3}']}
                elif label_member == 'cls': sample['cls'] = n % 3
                sink.write(sample)
                keys.append(f'shard-{s:04d}.tar:clip{n:05d}')
    return keys


def test_webdataset_round_trip_with_labels_and_a_broken_shard(tmp_path, caplog):
    keys = write_shards(tmp_path / 'wds', 3, 4)
    source = WebDatasetSource(str(tmp_path / 'wds' / 'shard-{0000..0002}.tar'), sample_rate=SR, clip_seconds=0.5)
    assert source.classes == ['even', 'mod3_0', 'mod3_1', 'mod3_2', 'odd']
    items = list(source)
    assert [it['id'] for it in items] == keys
    assert items[5]['target'].tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_allclose(items[5]['audio'].numpy(), tone(5), atol=2e-3)

    cls_keys = write_shards(tmp_path / 'cls', 1, 4, label_member='cls')
    cls_items = list(open_source(str(tmp_path / 'cls' / '*.tar'), sample_rate=SR, clip_seconds=0.5))
    assert [it['id'] for it in cls_items] == cls_keys
    assert [it['target'].argmax().item() for it in cls_items] == [0, 1, 2, 0]

    # a shard cut short, a sample without audio, a sample with broken audio
    whole = (tmp_path / 'wds' / 'shard-0000.tar').read_bytes()
    (tmp_path / 'wds' / 'shard-0003.tar').write_bytes(whole[:len(whole) // 2 + 100])
    with wds.TarWriter(str(tmp_path / 'wds' / 'shard-0004.tar')) as sink:
        sink.write({'__key__': 'no_audio', 'json': {'labels': ['odd']}})
        sink.write({'__key__': 'junk', 'flac': b'not a flac', 'json': {'labels': ['even']}})
    mixed = WebDatasetSource(sorted(str(p) for p in (tmp_path / 'wds').glob('*.tar')), sample_rate=SR, clip_seconds=0.5,
                             classes=source.classes)
    with caplog.at_level(logging.WARNING, logger='audiojepa.sources'):
        items = list(mixed)
    errors = {it['id']: it['error'] for it in items if 'error' in it}
    assert len(items) - len(errors) >= 12 + 1
    assert 'shard-0004.tar:no_audio' in errors and 'shard-0004.tar:junk' in errors
    assert any('shard-0003.tar' in k and 'unreadable shard' in v for k, v in errors.items()), errors
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == len(errors)
    with pytest.raises(ValueError, match=r"shard-0000\.tar:clip00000: unknown label id 'mod3_0'"):
        list(WebDatasetSource(str(tmp_path / 'wds' / 'shard-0000.tar'), classes=['even', 'odd'], sample_rate=SR))


@pytest.mark.parametrize('n_shards,world_size', [(4, 1), (1, 1), (3, 2)])
def test_webdataset_split_across_workers_and_processes_without_duplicates(tmp_path, n_shards, world_size):
    keys = write_shards(tmp_path / 'wds', n_shards, 6 // n_shards * 2)
    source = WebDatasetSource(sorted(str(p) for p in (tmp_path / 'wds').glob('*.tar')), sample_rate=SR, clip_seconds=0.5)
    seen = []
    for rank in range(world_size):
        loader = make_loader(source, batch_size=3, num_workers=2, shuffle=True, seed=1, rank=rank, world_size=world_size)
        ids = ids_of(loader)
        assert ids, f'rank {rank} read nothing'
        seen += ids
    assert sorted(seen) == sorted(keys)   # every sample once: no duplicates, nothing lost
    assert source.shuffle is False   # each loader configured its own copy


# ---------------------------------------------------------------- Hugging Face datasets

def test_hf_local_dataset_round_trip(tmp_path):
    import datasets
    struct_type = {'bytes': datasets.Value('binary'), 'path': datasets.Value('string')}
    rows = {'audio': [{'bytes': encoded(tone(i)), 'path': f'clip{i}.flac'} for i in range(5)]
                     + [{'bytes': b'', 'path': 'empty.flac'}],
            'label': ['dog', 'cat', 'dog', 'bird', 'cat', 'dog']}
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features({'audio': struct_type, 'label': datasets.Value('string')}))
    ds.cast_column('audio', datasets.Audio()).save_to_disk(str(tmp_path / 'ds'))

    source = open_source(f'hf:{tmp_path / "ds"}', sample_rate=SR, clip_seconds=0.5, crop='start')
    assert isinstance(source, HFSource) and len(source) == 6 and source.classes == ['bird', 'cat', 'dog']
    assert source[3]['id'] == 'clip3.flac' and source[3]['target'].tolist() == [1, 0, 0]
    np.testing.assert_allclose(source[3]['audio'].numpy(), tone(3), atol=2e-3)
    assert 'empty' in source[5]['error']
    assert sorted(ids_of(make_loader(source, batch_size=4, num_workers=2))) == [f'clip{i}.flac' for i in range(5)]

    stream = HFStreamSource(tmp_path / 'ds', sample_rate=SR, clip_seconds=0.5, classes=source.classes)
    streamed = [it for it in stream if 'error' not in it]
    assert [it['id'] for it in streamed] == [f'clip{i}.flac' for i in range(5)]
    assert torch.equal(streamed[3]['target'], source[3]['target'])
    with pytest.raises(ValueError, match='pass classes='): HFStreamSource(tmp_path / 'ds')

    arrays = datasets.Dataset.from_dict({'audio': [{'array': tone(0, channels=1, rate=8000), 'sampling_rate': 8000}]})
    assert HFSource(arrays, sample_rate=SR, clip_seconds=0.5)[0]['audio'].shape == (SR // 2,)


# ---------------------------------------------------------------- synthetic corpus and loader

def test_synthetic_loader_is_deterministic_across_worker_counts():
    source = SyntheticSounds(n_clips=12, clip_seconds=0.25, sample_rate=SR)
    in_process = list(make_loader(source, batch_size=4, num_workers=0, seed=5))
    in_workers = list(make_loader(source, batch_size=4, num_workers=2, seed=5))
    assert [b['id'] for b in in_process] == [b['id'] for b in in_workers]
    assert all(torch.equal(a['audio'], b['audio']) for a, b in zip(in_process, in_workers))
    shares = [ids_of(make_loader(source, batch_size=4, rank=r, world_size=3, seed=5)) for r in range(3)]
    assert sorted(sum(shares, [])) == sorted(f'synthetic-0-{i}' for i in range(12))


def test_random_crops_change_with_the_epoch_but_not_with_the_reader(tmp_path):
    sf.write(tmp_path / 'long.wav', np.random.default_rng(0).uniform(-0.5, 0.5, SR * 3), SR)
    source = FolderSource(tmp_path, sample_rate=SR, clip_seconds=0.5)
    loader = make_loader(source, batch_size=1)
    first, second = next(iter(loader))['audio'], next(iter(loader))['audio']
    assert not torch.equal(first, second)
    loader.set_epoch(0)
    assert torch.equal(next(iter(loader))['audio'], first)


def test_folder_follows_linked_folders_once_and_survives_a_link_loop(tmp_path):
    "Datasets are often assembled from links: linked class folders are read, and a link back up the tree ends."
    store, root = tmp_path / "store", tmp_path / "dataset"
    for label in ("kick", "snare"):
        (store / label).mkdir(parents=True)
        for j in range(2): sf.write(store / label / f"{j}.wav", tone(j), SR)
    root.mkdir()
    for label in ("kick", "snare"): (root / label).symlink_to(store / label, target_is_directory=True)
    (store / "kick" / "loop").symlink_to(root, target_is_directory=True)   # would recurse forever
    src = FolderSource(root, labels="dirs", clip_seconds=0.5)
    assert src.classes == ["kick", "snare"]
    assert sorted(src.ids) == ["kick/0.wav", "kick/1.wav", "snare/0.wav", "snare/1.wav"]


def test_synthetic_sounds_with_one_family_and_distractors_always_on():
    "A distractor comes from another family; with a single family there is none to draw, and no crash."
    src = SyntheticSounds(n_clips=3, families=["chirp"], distractor_prob=1.0, clip_seconds=0.5)
    assert [src[i]["target"].tolist() for i in range(3)] == [[1.0]] * 3
