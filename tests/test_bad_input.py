"""Bad input on every console script: one row per (command × bad input), each answered with one clear line.

Each row runs the command's `main` in this process with `sys.argv` set, as the installed script would, and asserts:
exit status 2, no traceback, the offending path or value named in the last line (`PROG: error: ...`), and nothing
left behind that looks like a finished result (`encoder/`, `report.json`, a propagated CSV, an `.npz`, an export).
The commands are those of `settings.ini`, and the experiments' `python -m` commands of `MODULES`;
`test_every_console_script_has_rows` fails when a console script is added without rows.
Every input is made here, small: a few 1 s tones, a six-node ontology.
"""
import configparser, importlib, json, os, sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
_ini = configparser.ConfigParser(); _ini.read(ROOT / 'settings.ini')
SCRIPTS = dict(line.split('=') for line in _ini['DEFAULT']['console_scripts'].split())
MODULES = {'corpora.py': 'experiments.corpora:main',   # `python -m experiments.corpora` and `experiments.learning`,
           'python -m experiments.learning': 'experiments.learning:main'}   # each named as its errors name it
from conftest import tone   # the shared test clip

RATE = 16000
# Music > Musical instrument > Keyboard (musical) > Piano, and Musical instrument > Bowed string instrument > Violin
TREE = [('/m/04rlf', 'Music', ['/m/04szw']), ('/m/04szw', 'Musical instrument', ['/m/05148p4', '/m/0l14_3']),
        ('/m/05148p4', 'Keyboard (musical)', ['/m/05r5c']), ('/m/05r5c', 'Piano', []),
        ('/m/0l14_3', 'Bowed string instrument', ['/m/07y_7']), ('/m/07y_7', 'Violin, fiddle', [])]
PIANO, VIOLIN = '/m/05r5c', '/m/07y_7'
SEGMENTS_HEAD = '# a test segments file\n# num_ytids=3\n# YTID, start_seconds, end_seconds, positive_labels\n'
# small and quick pretraining, as in test_train
SMALL = ['data.clip_seconds=1', 'data.num_workers=0', 'schedule.warmup_steps=2', 'run.log_every=1',
         'run.trackers=[]', 'run.progress=false', 'run.threads=1']


@pytest.fixture(scope='module')
def inputs(tmp_path_factory) -> Path:
    "Every input the rows name, good and bad, in one folder (`{in}` in a row)."
    d = tmp_path_factory.mktemp('inputs')
    for label, freq in (('low', 220), ('high', 1760)):
        (d / 'two' / label).mkdir(parents=True)
        for i in range(3): sf.write(d / 'two' / label / f'{label}{i}.wav', tone(freq, seed=i + freq), RATE)
    (d / 'one' / 'low').mkdir(parents=True)
    for i in range(4): sf.write(d / 'one' / 'low' / f'low{i}.wav', tone(220, seed=i), RATE)
    (d / 'empty').mkdir()
    (d / 'text').mkdir()
    (d / 'text' / 'notes.wav').write_text('these are notes, not audio\n')
    (d / 'text' / 'readme.flac').write_text('neither is this\n')
    (d / 'zero').mkdir()
    (d / 'zero' / 'silence.wav').write_bytes(b'')
    (d / 'cut').mkdir()
    (d / 'cut' / 'half.wav').write_bytes((d / 'two' / 'low' / 'low0.wav').read_bytes()[:30])
    (d / 'notes.txt').write_text('some notes\n')
    (d / 'notes.wav').write_text('some text in a file named .wav\n')
    (d / 'afile').write_text('a file where a folder is expected\n')
    (d / 'readonly').mkdir()
    (d / 'readonly').chmod(0o555)
    # AudioSet-style metadata
    (d / 'ontology.json').write_text(json.dumps([{'id': i, 'name': n, 'child_ids': c} for i, n, c in TREE]))
    (d / 'classes.csv').write_text('index,mid,display_name\n' + ''.join(f'{j},{i},"{n}"\n' for j, (i, n, _) in enumerate(TREE)))
    (d / 'classes_nomid.csv').write_text('index,name\n0,Music\n')
    (d / 'classes_unknown.csv').write_text('index,mid,display_name\n0,/m/05r5c,Piano\n1,/m/not_a_mid,Nothing\n')
    rows = ['a1, 0.000, 10.000, "/m/05r5c"', 'a2, 0.000, 10.000, "/m/07y_7,/m/04rlf"', 'a3, 0.000, 10.000, "/m/05r5c"']
    (d / 'segments.csv').write_text(SEGMENTS_HEAD + '\n'.join(rows) + '\n')
    (d / 'segments_cut.csv').write_text(SEGMENTS_HEAD + '\n'.join(rows[:2]) + '\na3, 0.000, 10.000, "/m/')
    (d / 'segments_unknown.csv').write_text(SEGMENTS_HEAD + '\n'.join(rows[:2]) + '\na3, 0.000, 10.000, "/m/not_a_mid"\n')
    (d / 'as').mkdir()   # a segments file with its class list beside it, as `open_source` finds AudioSet's
    (d / 'as' / 'class_labels_indices.csv').write_text((d / 'classes.csv').read_text())
    (d / 'as' / 'segments_cut.csv').write_text((d / 'segments_cut.csv').read_text())
    (d / 'as' / 'segments_cut').mkdir()   # its audio folder, found by the file's name
    for y in ('a1', 'a2', 'a3'): sf.write(d / 'as' / 'segments_cut' / f'{y}.wav', tone(220), RATE)
    (d / 'segments_3fields.csv').write_text(SEGMENTS_HEAD + 'a1, 0.000, 10.000\n')
    (d / 'segments.wav').write_bytes((d / 'two' / 'low' / 'low0.wav').read_bytes())
    # tagging manifests (labels: MIDs separated by ';')
    clips = sorted((d / 'two').rglob('*.wav'))
    (d / 'train.csv').write_text('path,labels\n' + ''.join(f"{p},{PIANO if 'low' in p.name else VIOLIN}\n" for p in clips))
    (d / 'train_unknown.csv').write_text('path,labels\n' + ''.join(f'{p},/m/not_a_mid\n' for p in clips))
    (d / 'train_nopath.csv').write_text('file,labels\n' + ''.join(f'{p},{PIANO}\n' for p in clips))
    # fine-tuning: a metadata table whose fold column holds one fold, a test set with a label the training data lacks
    (d / 'meta_one_fold.csv').write_text('filename,fold,category\n' + ''.join(f'two/{p.parent.name}/{p.name},1,{p.parent.name}\n' for p in clips))
    (d / 'test_extra.csv').write_text(f'path,labels\n{clips[0]},low\n{clips[1]},middle\n')
    from audiojepa.models import ViTEncoder, EncoderConfig, save_encoder   # a small export
    save_encoder(d / 'export', ViTEncoder(EncoderConfig(embed_dim=32, depth=2, num_heads=2)))
    (d / 'list.yaml').write_text('- model\n- cnn6\n')
    (d / 'words.yaml').write_text('just some words\n')
    (d / 'broken.yaml').write_text('model:\n  preset: [tiny\n')
    yield d
    (d / 'readonly').chmod(0o755)


# --- the matrix ----------------------------------------------------------------------------------------------------
# (script, case, argv, what the error line must name). In argv, {in} is the inputs folder and {out} a fresh folder
# of the row's own: the row asserts nothing that looks like a result appears under it.
TAG = ['--model', 'cnn6', '--classes', '{in}/classes.csv', '--ontology', '{in}/ontology.json', 'run.progress=false']
ROWS = [
    # audiojepa-pretrain
    ('audiojepa-pretrain', 'missing path', ['--data', '{in}/nowhere', '--out', '{out}/run'], '{in}/nowhere'),
    ('audiojepa-pretrain', 'empty folder', ['--data', '{in}/empty', '--out', '{out}/run'], '{in}/empty'),
    ('audiojepa-pretrain', 'folder of non-audio', ['--data', '{in}/text', '--out', '{out}/run'], 'no readable audio'),
    ('audiojepa-pretrain', 'zero-length audio', ['--data', '{in}/zero', '--out', '{out}/run'], 'no readable audio'),
    ('audiojepa-pretrain', 'truncated audio', ['--data', '{in}/cut', '--out', '{out}/run'], 'no readable audio'),
    ('audiojepa-pretrain', 'cut-short segments CSV', ['--data', '{in}/as/segments_cut.csv', '--out', '{out}/run'], 'line 6 is incomplete'),
    ('audiojepa-pretrain', 'text as YAML config', ['--config', '{in}/words.yaml', '--out', '{out}/run'], '{in}/words.yaml'),
    ('audiojepa-pretrain', 'YAML list as config', ['--config', '{in}/list.yaml', '--out', '{out}/run'], '{in}/list.yaml'),
    ('audiojepa-pretrain', 'malformed YAML config', ['--config', '{in}/broken.yaml', '--out', '{out}/run'], '{in}/broken.yaml'),
    ('audiojepa-pretrain', 'audio as YAML config', ['--config', '{in}/segments.wav', '--out', '{out}/run'], '{in}/segments.wav'),
    ('audiojepa-pretrain', 'missing config', ['--config', '{in}/nowhere.yaml', '--out', '{out}/run'], '{in}/nowhere.yaml'),
    ('audiojepa-pretrain', 'text as resume checkpoint', ['--resume', '{in}/notes.txt', '--out', '{out}/run'], '{in}/notes.txt'),
    ('audiojepa-pretrain', 'unknown preset', ['--preset', 'huge', '--out', '{out}/run'], 'huge'),
    ('audiojepa-pretrain', 'negative number', ['--max-steps', '-3', '--out', '{out}/run'], '-3'),
    ('audiojepa-pretrain', 'non-numeric number', ['--batch-size', 'eight', '--out', '{out}/run'], 'eight'),
    ('audiojepa-pretrain', 'zero batch size', ['--batch-size', '0', '--out', '{out}/run'], 'batch_size'),
    ('audiojepa-pretrain', '--out is a file', ['--data', 'synthetic:8', '--out', '{in}/afile'], '{in}/afile'),
    ('audiojepa-pretrain', '--out under a file', ['--data', 'synthetic:8', '--out', '{in}/afile/run'], '{in}/afile'),
    ('audiojepa-pretrain', 'unwritable --out', ['--data', 'synthetic:8', '--out', '{in}/readonly/run'], '{in}/readonly'),
    ('audiojepa-pretrain', 'missing eval folder', ['--data', 'synthetic:8', '--out', '{out}/run', 'eval.data=[{in}/nowhere]'], '{in}/nowhere'),
    ('audiojepa-pretrain', 'one-class eval folder', ['--data', 'synthetic:8', '--out', '{out}/run', 'eval.data=[{in}/one]'], '{in}/one'),
    ('audiojepa-pretrain', 'eval folder of non-audio', ['--data', 'synthetic:8', '--out', '{out}/run', 'eval.data=[{in}/text]'], '{in}/text'),
    ('audiojepa-pretrain', 'two eval tasks of one name', ['--data', 'synthetic:8', '--out', '{out}/run', 'eval.data=[{in}/two,{in}/as/../two]'], "the task 'two'"),
    ('audiojepa-pretrain', 'too few eval clips for the folds', ['--data', 'synthetic:8', '--out', '{out}/run', 'eval.data=[{in}/two]', 'eval.folds=4'], 'eval.folds'),
    ('audiojepa-pretrain', 'unknown eval probe', ['--data', 'synthetic:8', '--out', '{out}/run', 'eval.data=[{in}/two]', 'eval.probes=[svm]'], 'svm'),
    ('audiojepa-pretrain', 'negative diagnostics.every', ['--data', 'synthetic:8', '--out', '{out}/run', 'diagnostics.every=-1'], 'diagnostics.every'),
    ('audiojepa-pretrain', 'negative diagnostics.clips', ['--data', 'synthetic:8', '--out', '{out}/run', 'diagnostics.clips=-2'], 'diagnostics.clips'),
    ('audiojepa-pretrain', 'non-boolean run.compile', ['--data', 'synthetic:8', '--out', '{out}/run', 'run.compile=maybe'], 'run.compile'),
    # audiojepa-hlp
    ('audiojepa-hlp', 'missing path', ['{in}/nowhere.csv'], '{in}/nowhere.csv'),
    ('audiojepa-hlp', 'folder as segments CSV', ['{in}/empty', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv'], '{in}/empty'),
    ('audiojepa-hlp', 'audio as segments CSV', ['{in}/segments.wav', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv'], '{in}/segments.wav'),
    ('audiojepa-hlp', 'text as ontology', ['{in}/segments.csv', '--ontology', '{in}/notes.txt', '--class-labels', '{in}/classes.csv'], '{in}/notes.txt'),
    ('audiojepa-hlp', 'CSV with missing columns', ['{in}/segments.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes_nomid.csv'], '{in}/classes_nomid.csv'),
    ('audiojepa-hlp', 'segments with 3 fields', ['{in}/segments_3fields.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv'], '{in}/segments_3fields.csv'),
    ('audiojepa-hlp', 'cut-short last line', ['{in}/segments_cut.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv', '--out', '{out}/propagated.csv'], 'line 6 is incomplete'),
    ('audiojepa-hlp', 'unknown MID', ['{in}/segments_unknown.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv', '--out', '{out}/propagated.csv'], '/m/not_a_mid on line 6'),
    ('audiojepa-hlp', 'class list MID not in the ontology', ['{in}/segments.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes_unknown.csv'], '/m/not_a_mid'),
    ('audiojepa-hlp', 'unknown policy', ['{in}/segments.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv', '--policy', 'grandparents'], 'grandparents'),
    ('audiojepa-hlp', 'negative number', ['{in}/segments.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv', '--top', '-1'], '-1'),
    ('audiojepa-hlp', 'non-numeric number', ['{in}/segments.csv', '--top', 'ten'], 'ten'),
    ('audiojepa-hlp', '--out is a folder', ['{in}/segments.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv', '--out', '{in}/empty'], '{in}/empty'),
    ('audiojepa-hlp', '--out under a file', ['{in}/segments.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv', '--out', '{in}/afile/propagated.csv'], '{in}/afile'),
    ('audiojepa-hlp', 'unwritable --out', ['{in}/segments.csv', '--ontology', '{in}/ontology.json', '--class-labels', '{in}/classes.csv', '--out', '{in}/readonly/propagated.csv'], '{in}/readonly'),
    # audiojepa-embed
    ('audiojepa-embed', 'missing path', ['--encoder', 'logmel', '--data', '{in}/nowhere', '--out', '{out}/e.npz'], '{in}/nowhere'),
    ('audiojepa-embed', 'empty folder', ['--encoder', 'logmel', '--data', '{in}/empty', '--out', '{out}/e.npz'], '{in}/empty'),
    ('audiojepa-embed', 'folder of non-audio', ['--encoder', 'logmel', '--data', '{in}/text', '--out', '{out}/e.npz'], '{in}/text'),
    ('audiojepa-embed', 'zero-length audio', ['--encoder', 'logmel', '--data', '{in}/zero', '--out', '{out}/e.npz'], '{in}/zero'),
    ('audiojepa-embed', 'truncated audio', ['--encoder', 'logmel', '--data', '{in}/cut', '--out', '{out}/e.npz'], '{in}/cut'),
    ('audiojepa-embed', 'text as encoder', ['--encoder', '{in}/notes.txt', '--data', '{in}/two', '--out', '{out}/e.npz'], '{in}/notes.txt'),
    ('audiojepa-embed', 'folder as encoder', ['--encoder', '{in}/empty', '--data', '{in}/two', '--out', '{out}/e.npz'], '{in}/empty'),
    ('audiojepa-embed', 'unknown preset', ['--encoder', 'random:huge', '--data', '{in}/two', '--out', '{out}/e.npz'], 'huge'),
    ('audiojepa-embed', 'unknown pooling', ['--encoder', 'logmel', '--data', '{in}/two', '--pool', 'median', '--out', '{out}/e.npz'], 'median'),
    ('audiojepa-embed', 'negative number', ['--encoder', 'logmel', '--data', '{in}/two', '--batch-size', '-2', '--out', '{out}/e.npz'], '-2'),
    ('audiojepa-embed', 'non-numeric number', ['--encoder', 'logmel', '--data', '{in}/two', '--batch-size', 'two', '--out', '{out}/e.npz'], 'two'),
    ('audiojepa-embed', '--out is a folder', ['--encoder', 'logmel', '--data', '{in}/two', '--out', '{in}/empty'], '{in}/empty'),
    ('audiojepa-embed', '--out under a file', ['--encoder', 'logmel', '--data', '{in}/two', '--out', '{in}/afile/e.npz'], '{in}/afile'),
    ('audiojepa-embed', 'unwritable --out', ['--encoder', 'logmel', '--data', '{in}/two', '--out', '{in}/readonly/e.npz'], '{in}/readonly'),
    ('audiojepa-embed', 'Hub id that is not one', ['--encoder', 'hf:not a model', '--data', '{in}/two', '--out', '{out}/e.npz'], "'hf:not a model' is not a Hugging Face Hub model id"),
    ('audiojepa-embed', 'Hub id with three parts', ['--encoder', 'hf:a/b/c', '--data', '{in}/two', '--out', '{out}/e.npz'], "'hf:a/b/c'"),
    ('audiojepa-embed', 'Hub model not in the offline cache', ['--encoder', 'hf:someone/missing', '--data', '{in}/two', '--out', '{out}/e.npz'], 'hf:someone/missing: not in the Hugging Face cache'),
    ('audiojepa-embed', '--layers out of range', ['--encoder', 'random:tiny', '--data', '{in}/two', '--layers', '9', '--out', '{out}/e.npz'], "layers '9': the encoder has 4 blocks"),
    ('audiojepa-embed', '--layers block 0', ['--encoder', 'random:tiny', '--data', '{in}/two', '--layers', '0,2', '--out', '{out}/e.npz'], "layers '0,2'"),
    ('audiojepa-embed', '--layers not numbers', ['--encoder', 'random:tiny', '--data', '{in}/two', '--layers', 'middle', '--out', '{out}/e.npz'], "layers 'middle': not a block number"),
    ('audiojepa-embed', '--layers unknown mix', ['--encoder', 'random:tiny', '--data', '{in}/two', '--layers', 'all:max', '--out', '{out}/e.npz'], "unknown mix 'max'"),
    ('audiojepa-embed', '--layers of logmel', ['--encoder', 'logmel', '--data', '{in}/two', '--layers', 'all', '--out', '{out}/e.npz'], 'logmel has no layers'),
    ('audiojepa-embed', '--frames-per-column not dividing a column', ['--encoder', 'random:tiny', '--data', '{in}/two', '--frames-per-column', '3', '--out', '{out}/e.npz'], 'frames_per_column 3'),
    ('audiojepa-embed', 'zero --frames-per-column', ['--encoder', 'random:tiny', '--data', '{in}/two', '--frames-per-column', '0', '--out', '{out}/e.npz'], '--frames-per-column'),
    # audiojepa-probe
    ('audiojepa-probe', 'missing path', ['--encoder', 'logmel', '--data', '{in}/nowhere', '--out', '{out}/report.json'], '{in}/nowhere'),
    ('audiojepa-probe', 'empty folder', ['--encoder', 'logmel', '--data', '{in}/empty', '--out', '{out}/report.json'], '{in}/empty'),
    ('audiojepa-probe', 'folder of non-audio', ['--encoder', 'logmel', '--data', '{in}/text', '--out', '{out}/report.json'], '{in}/text'),
    ('audiojepa-probe', 'one-class folder', ['--encoder', 'logmel', '--data', '{in}/one', '--out', '{out}/report.json'], '{in}/one'),
    ('audiojepa-probe', 'text as encoder', ['--encoder', '{in}/notes.txt', '--data', '{in}/two', '--out', '{out}/report.json'], '{in}/notes.txt'),
    ('audiojepa-probe', 'unknown preset', ['--encoder', 'random:huge', '--data', '{in}/two', '--out', '{out}/report.json'], 'huge'),
    ('audiojepa-probe', 'negative number', ['--encoder', 'logmel', '--data', '{in}/two', '--folds', '-2', '--out', '{out}/report.json'], '-2'),
    ('audiojepa-probe', 'zero neighbours', ['--encoder', 'logmel', '--data', '{in}/two', '--k', '0', '--out', '{out}/report.json'], '--k'),
    ('audiojepa-probe', 'non-numeric number', ['--encoder', 'logmel', '--data', '{in}/two', '--k', 'ten', '--out', '{out}/report.json'], 'ten'),
    ('audiojepa-probe', '--out is a folder', ['--encoder', 'logmel', '--data', '{in}/two', '--out', '{in}/empty'], '{in}/empty'),
    ('audiojepa-probe', '--out under a file', ['--encoder', 'logmel', '--data', '{in}/two', '--out', '{in}/afile/report.json'], '{in}/afile'),
    ('audiojepa-probe', 'unwritable --out', ['--encoder', 'logmel', '--data', '{in}/two', '--out', '{in}/readonly/report.json'], '{in}/readonly'),
    ('audiojepa-probe', 'Hub id that is not one', ['--encoder', 'hf:someone', '--data', '{in}/two', '--out', '{out}/report.json'], "'hf:someone' is not a Hugging Face Hub model id"),
    ('audiojepa-probe', 'Hub model not in the offline cache', ['--encoder', 'hf:someone/missing@v2', '--data', '{in}/two', '--out', '{out}/report.json'], 'hf:someone/missing@v2: not in the Hugging Face cache'),
    ('audiojepa-probe', '--layers out of range', ['--encoder', 'random:tiny', '--data', '{in}/two', '--layers', '2,5', '--out', '{out}/report.json'], "layers '2,5': the encoder has 4 blocks"),
    ('audiojepa-probe', '--frames-per-column not dividing a column', ['--encoder', 'random:tiny', '--data', '{in}/two', '--frames-per-column', '7', '--out', '{out}/report.json'], 'frames_per_column 7'),
    # audiojepa-convert
    ('audiojepa-convert', 'missing path', ['{in}/nowhere.ckpt', '{out}/export'], '{in}/nowhere.ckpt'),
    ('audiojepa-convert', 'text as checkpoint', ['{in}/notes.wav', '{out}/export'], 'cannot read {in}/notes.wav as a torch checkpoint: it is a text file'),
    ('audiojepa-convert', 'audio as checkpoint', ['{in}/two/low/low0.wav', '{out}/export'], 'WAV audio'),
    ('audiojepa-convert', 'empty file as checkpoint', ['{in}/zero/silence.wav', '{out}/export'], 'an empty file'),
    ('audiojepa-convert', 'folder as checkpoint', ['{in}/two', '{out}/export'], '{in}/two'),
    ('audiojepa-convert', 'negative number', ['{in}/notes.wav', '{out}/export', '--num-heads', '-4'], '-4'),
    ('audiojepa-convert', 'non-numeric number', ['{in}/notes.wav', '{out}/export', '--num-heads', 'twelve'], 'twelve'),
    ('audiojepa-convert', 'OUT is a file', ['{in}/notes.wav', '{in}/afile'], '{in}/afile'),
    ('audiojepa-convert', 'unwritable OUT', ['{in}/notes.wav', '{in}/readonly/export'], '{in}/readonly'),
    # audiojepa-export
    ('audiojepa-export', 'nothing to do', ['{in}/export'], 'nothing to do: give --out DIR, --push ORG/NAME and/or --onnx FILE'),
    ('audiojepa-export', 'missing encoder', ['{in}/nowhere', '--out', '{out}/exported'], '{in}/nowhere'),
    ('audiojepa-export', 'text as encoder', ['{in}/notes.txt', '--out', '{out}/exported'], '{in}/notes.txt'),
    ('audiojepa-export', 'folder as encoder', ['{in}/empty', '--out', '{out}/exported'], 'not an exported audiojepa encoder'),
    ('audiojepa-export', 'Hub id that is not one', ['hf:not/a/model', '--out', '{out}/exported'], "'hf:not/a/model' is not a Hugging Face Hub model id"),
    ('audiojepa-export', 'Hub model not in the offline cache', ['hf:someone/missing', '--out', '{out}/exported'], 'hf:someone/missing: not in the Hugging Face cache'),
    ('audiojepa-export', '--out is a file', ['{in}/notes.txt', '--out', '{in}/afile'], '{in}/afile'),
    ('audiojepa-export', 'unwritable --out', ['{in}/notes.txt', '--out', '{in}/readonly/exported'], '{in}/readonly'),
    ('audiojepa-export', '--push to a name that is not one', ['{in}/notes.txt', '--push', 'just-a-name'], "'hf:just-a-name' is not a Hugging Face Hub model id"),
    ('audiojepa-export', 'ONNX target that is not .onnx', ['{in}/notes.txt', '--onnx', '{out}/m.pt'], '--onnx must be an .onnx file'),
    ('audiojepa-export', 'ONNX target is a folder', ['{in}/notes.txt', '--onnx', '{in}/empty'], '{in}/empty'),
    ('audiojepa-export', 'ONNX target under a file', ['{in}/notes.txt', '--onnx', '{in}/afile/m.onnx'], '{in}/afile'),
    ('audiojepa-export', 'unwritable ONNX target', ['{in}/notes.txt', '--onnx', '{in}/readonly/m.onnx'], '{in}/readonly'),
    ('audiojepa-export', '--layers out of range', ['{in}/export', '--onnx', '{out}/m.onnx', '--layers', '7'], "layers '7': the encoder has 2 blocks"),
    ('audiojepa-export', '--layers without --onnx', ['{in}/export', '--out', '{out}/exported', '--layers', '2'], '--layers applies to --onnx, which is not given'),
    ('audiojepa-export', 'zero --sampling-rate', ['{in}/export', '--onnx', '{out}/m.onnx', '--sampling-rate', '0'], '--sampling-rate must be a positive number, got 0'),
    ('audiojepa-export', '--sampling-rate without --onnx', ['{in}/export', '--out', '{out}/exported', '--sampling-rate', '44100'], '--sampling-rate applies to --onnx'),
    ('audiojepa-export', '--revision without --push', ['{in}/export', '--out', '{out}/exported', '--revision', 'v2'], '--revision applies to --push'),
    ('audiojepa-export', '--private without --push', ['{in}/export', '--onnx', '{out}/m.onnx', '--private'], '--private applies to --push'),
    ('audiojepa-export', 'text as --report', ['{in}/notes.txt', '--out', '{out}/exported', '--report', '{in}/notes.txt'], '--report {in}/notes.txt: cannot read it as JSON'),
    ('audiojepa-export', 'JSON that is no report', ['{in}/notes.txt', '--out', '{out}/exported', '--report', '{in}/ontology.json'], '--report {in}/ontology.json: neither'),
    ('audiojepa-export', '--network of an export', ['{in}/empty', '--out', '{out}/exported', '--network', 'teacher'], '--network chooses an encoder of an authors\' checkpoint'),
    # audiojepa-tag
    ('audiojepa-tag', 'missing path', [*TAG, '--train', '{in}/nowhere.csv', '--out', '{out}/run'], '{in}/nowhere.csv'),
    ('audiojepa-tag', 'run.compile (pretraining only)', [*TAG, '--train', '{in}/train.csv', '--out', '{out}/run', 'run.compile=true'], 'run.compile'),
    ('audiojepa-tag', 'empty folder', [*TAG, '--train', '{in}/empty', '--out', '{out}/run'], '{in}/empty'),
    ('audiojepa-tag', 'folder of non-audio', [*TAG, '--train', '{in}/text', '--out', '{out}/run'], '{in}/text'),
    ('audiojepa-tag', 'cut-short segments CSV', [*TAG, '--train', '{in}/as/segments_cut.csv', '--out', '{out}/run'], 'line 6 is incomplete'),
    ('audiojepa-tag', 'text as ontology', [*TAG, '--train', '{in}/train.csv', '--test', '{in}/train.csv', '--ontology', '{in}/notes.txt', '--out', '{out}/run'], '{in}/notes.txt'),
    ('audiojepa-tag', 'text as class list', [*TAG, '--train', '{in}/train.csv', '--classes', '{in}/notes.txt', '--out', '{out}/run'], '{in}/notes.txt'),
    ('audiojepa-tag', 'manifest with missing columns', [*TAG, '--train', '{in}/train_nopath.csv', '--out', '{out}/run'], '{in}/train_nopath.csv'),
    ('audiojepa-tag', 'only unknown MIDs', ['--model', 'cnn6', '--ontology', '{in}/ontology.json', '--train', '{in}/train_unknown.csv', '--out', '{out}/run'], '/m/not_a_mid'),
    ('audiojepa-tag', 'class list MID not in the ontology', [*TAG, '--train', '{in}/train.csv', '--hlp', 'train', '--classes', '{in}/classes_unknown.csv', '--out', '{out}/run'], '/m/not_a_mid'),
    ('audiojepa-tag', 'text as YAML config', [*TAG, '--train', '{in}/train.csv', '--config', '{in}/words.yaml', '--out', '{out}/run'], '{in}/words.yaml'),
    ('audiojepa-tag', 'malformed YAML config', [*TAG, '--train', '{in}/train.csv', '--config', '{in}/broken.yaml', '--out', '{out}/run'], '{in}/broken.yaml'),
    ('audiojepa-tag', 'unknown model', [*TAG, '--train', '{in}/train.csv', '--model', 'resnet9', '--out', '{out}/run'], 'resnet9'),
    ('audiojepa-tag', 'missing encoder', [*TAG, '--train', '{in}/train.csv', '--model', 'encoder:{in}/nowhere', '--out', '{out}/run'], '{in}/nowhere does not exist'),
    ('audiojepa-tag', 'encoder Hub id that is not one', [*TAG, '--train', '{in}/train.csv', '--model', 'encoder:hf:not a model', '--out', '{out}/run'], "'hf:not a model' is not a Hugging Face Hub model id"),
    ('audiojepa-tag', 'unknown policy', [*TAG, '--train', '{in}/train.csv', '--policy', 'grandparents', '--out', '{out}/run'], 'grandparents'),
    ('audiojepa-tag', 'negative number', [*TAG, '--train', '{in}/train.csv', '--max-steps', '-5', '--out', '{out}/run'], '-5'),
    ('audiojepa-tag', 'non-numeric number', [*TAG, '--train', '{in}/train.csv', '--clip-seconds', 'long', '--out', '{out}/run'], 'long'),
    ('audiojepa-tag', '--out is a file', [*TAG, '--train', '{in}/train.csv', '--out', '{in}/afile'], '{in}/afile'),
    ('audiojepa-tag', 'unwritable --out', [*TAG, '--train', '{in}/train.csv', '--out', '{in}/readonly/run'], '{in}/readonly'),
]
# audiojepa-finetune
FT = ['--encoder', 'random:tiny', '--max-steps', '2', 'run.progress=false']
ROWS += [
    ('audiojepa-finetune', 'missing path', [*FT, '--train', '{in}/nowhere', '--out', '{out}/run'], '{in}/nowhere'),
    ('audiojepa-finetune', 'folder with one class', [*FT, '--train', '{in}/one', '--out', '{out}/run'], '{in}/one'),
    ('audiojepa-finetune', 'folder of non-audio', [*FT, '--train', '{in}/text', '--out', '{out}/run'], '{in}/text'),
    ('audiojepa-finetune', 'fold column with one fold', [*FT, '--train', '{in}/meta_one_fold.csv', '--out', '{out}/run'], 'single fold'),
    ('audiojepa-finetune', 'a test label the training lacks', [*FT, '--train', '{in}/two', '--test', '{in}/test_extra.csv', '--out', '{out}/run'], "'middle'"),
    ('audiojepa-finetune', 'text as encoder', ['--encoder', '{in}/notes.txt', '--train', '{in}/two', '--out', '{out}/run'], '{in}/notes.txt'),
    ('audiojepa-finetune', 'folder as encoder', ['--encoder', '{in}/two', '--train', '{in}/two', '--out', '{out}/run'], '{in}/two'),
    ('audiojepa-finetune', 'unknown preset', ['--encoder', 'random:huge', '--train', '{in}/two', '--out', '{out}/run'], 'huge'),
    ('audiojepa-finetune', 'unknown head', [*FT, '--train', '{in}/two', '--head', 'max', '--out', '{out}/run'], 'max'),
    ('audiojepa-finetune', 'negative number', [*FT, '--train', '{in}/two', '--batch-size', '-4', '--out', '{out}/run'], '-4'),
    ('audiojepa-finetune', 'text as YAML config', [*FT, '--train', '{in}/two', '--config', '{in}/words.yaml', '--out', '{out}/run'], '{in}/words.yaml'),
    ('audiojepa-finetune', '--out is a file', [*FT, '--train', '{in}/two', '--out', '{in}/afile'], '{in}/afile'),
    ('audiojepa-finetune', 'unwritable --out', [*FT, '--train', '{in}/two', '--out', '{in}/readonly/run'], '{in}/readonly'),
    ('audiojepa-finetune', 'run.compile (pretraining only)', [*FT, '--train', '{in}/two', '--out', '{out}/run', 'run.compile=true'], 'run.compile'),
    ('audiojepa-pretrain', 'text as --init-from', ['--data', 'synthetic:8', '--init-from', '{in}/notes.txt', '--out', '{out}/run'], '{in}/notes.txt'),
]
# audiojepa-xares
X = ['--env', '{out}/env', '--out', '{out}/xares.json']
XARES_ROWS = [
    ('audiojepa-xares', 'missing path', ['--encoder', 'random:tiny', '--local', 'toy={in}/nowhere', *X], '{in}/nowhere'),
    ('audiojepa-xares', 'empty folder', ['--encoder', 'random:tiny', '--local', 'toy={in}/empty', *X], '{in}/empty'),
    ('audiojepa-xares', 'folder of non-audio', ['--encoder', 'random:tiny', '--local', 'toy={in}/text', *X], '{in}/text'),
    ('audiojepa-xares', 'one-class folder', ['--encoder', 'random:tiny', '--local', 'toy={in}/one', *X], '{in}/one'),
    ('audiojepa-xares', 'local task without a name', ['--encoder', 'random:tiny', '--local', '{in}/two', *X], '{in}/two'),
    ('audiojepa-xares', 'unknown task', ['--encoder', 'random:tiny', '--tasks', 'esc5000', *X], 'esc5000'),
    ('audiojepa-xares', 'text as encoder', ['--encoder', '{in}/notes.txt', '--local', 'toy={in}/two', *X], '{in}/notes.txt'),
    ('audiojepa-xares', 'unknown preset', ['--encoder', 'random:huge', '--local', 'toy={in}/two', *X], 'huge'),
    ('audiojepa-xares', 'negative number', ['--encoder', 'random:tiny', '--local', 'toy={in}/two', '--epochs', '-3', *X], '-3'),
    ('audiojepa-xares', 'non-numeric number', ['--encoder', 'random:tiny', '--local', 'toy={in}/two', '--folds', 'five', *X], 'five'),
    ('audiojepa-xares', '--out is a folder', ['--encoder', 'random:tiny', '--local', 'toy={in}/two', '--env', '{out}/env', '--out', '{in}/empty'], '{in}/empty'),
    ('audiojepa-xares', 'unwritable --out', ['--encoder', 'random:tiny', '--local', 'toy={in}/two', '--env', '{out}/env', '--out', '{in}/readonly/xares.json'], '{in}/readonly'),
    ('audiojepa-xares', 'Hub model not in the offline cache', ['--encoder', 'hf:someone/missing', '--local', 'toy={in}/two', *X], 'hf:someone/missing: not in the Hugging Face cache'),
    ('audiojepa-xares', '--layers out of range', ['--encoder', 'random:tiny', '--local', 'toy={in}/two', '--layers', '5', *X], "layers '5'"),
    ('audiojepa-xares', 'zero --frames-per-column', ['--encoder', 'random:tiny', '--local', 'toy={in}/two', '--frames-per-column', '0', *X], '--frames-per-column'),
]
ROWS += XARES_ROWS
# python -m experiments.corpora (it checks its input before building anything)
ROWS += [
    ('corpora.py', 'unknown task', ['--out', '{out}/c', '--tasks', 'pool,nonsense'], 'nonsense'),
    ('corpora.py', 'no task', ['--out', '{out}/c', '--tasks', ','], '--tasks'),
    ('corpora.py', 'zero pool hours', ['--out', '{out}/c', '--pool-hours', '0'], '--pool-hours'),
    ('corpora.py', 'non-numeric number', ['--out', '{out}/c', '--pool-hours', 'ten'], 'ten'),
    ('corpora.py', '--out is a file', ['--out', '{in}/afile', '--tasks', 'language'], '{in}/afile'),
    ('corpora.py', '--out under a file', ['--out', '{in}/afile/c', '--tasks', 'language'], '{in}/afile'),
    ('corpora.py', 'unwritable --out', ['--out', '{in}/readonly/c', '--tasks', 'language'], '{in}/readonly'),
]
# python -m experiments.learning (its rows with real corpora are in tests/test_learning.py)
LEARNING = 'python -m experiments.learning'
ROWS += [
    (LEARNING, 'unknown command', ['walk'], "'walk'"),
    (LEARNING, 'report with no stored runs', ['report', '--results', '{out}/none'], '{out}/none'),
    (LEARNING, 'report --curves with no stored runs', ['report', '--curves', '--results', '{out}/none'], '{out}/none'),
    (LEARNING, 'run without corpora', ['run', '--corpora', '{out}/none', '--results', '{out}/r'], '{out}/none'),
    (LEARNING, 'unknown recipe', ['run', '--recipe', 'nope', '--corpora', '{out}/none', '--results', '{out}/r'], "'nope'"),
    (LEARNING, 'bad --seeds', ['run', '--seeds', 'a-b', '--corpora', '{out}/none', '--results', '{out}/r'], "'a-b'"),
]

RESULTS = ('encoder', 'report.json', 'propagated.csv', 'e.npz', 'model.safetensors', 'metrics.csv', 'checkpoints', 'xares.json', 'xares.md',
           'corpora.json', 'manifest.json', 'exported', 'm.onnx', 'README.md', 'report.md', 'report.png')


def run_command(script:str, argv:list, monkeypatch, capsys) -> tuple:
    "Exit status and output of `script ARGV` run in this process, as its console-script entry point runs it."
    module, func = {**SCRIPTS, **MODULES}[script].split(':')
    main = getattr(importlib.import_module(module), func)
    monkeypatch.setattr(sys, 'argv', [script, *argv])
    try: main(); code = 0
    except SystemExit as e: code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize('script,case,argv,named', ROWS, ids=[f"{s.removeprefix('audiojepa-')}: {c}" for s, c, _, _ in ROWS])
def test_bad_input(script, case, argv, named, inputs, tmp_path, monkeypatch, capsys, caplog, one_thread):
    fill = lambda s: s.replace('{in}', str(inputs)).replace('{out}', str(tmp_path))
    if 'readonly' in ' '.join(argv) and os.access(inputs / 'readonly', os.W_OK):
        # as root a read-only folder is still writable; the command must ask the system, so make the system say no
        real = os.access
        monkeypatch.setattr(os, 'access', lambda p, mode, **kw: False if Path(p) == inputs / 'readonly' and mode & os.W_OK else real(p, mode, **kw))
    before = sorted(inputs.rglob('*'))
    code, out, err = run_command(script, [fill(a) for a in argv], monkeypatch, capsys)
    everything = out + err + caplog.text
    assert 'Traceback' not in everything, everything[-3000:]
    assert code == 2, (code, err[-2000:])
    last = err.strip().splitlines()[-1] if err.strip() else ''
    assert last.startswith(f'{script}: error: '), err[-2000:]
    assert fill(named) in last, last
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*') if p.name in RESULTS)
    assert not left, left
    if script == 'audiojepa-finetune': assert not (tmp_path / 'run').exists()   # not even an empty run directory
    assert sorted(inputs.rglob('*')) == before, set(inputs.rglob('*')) ^ set(before)   # nothing written beside the inputs


def test_every_console_script_has_rows():
    "A command added to settings.ini without rows here fails this test."
    scripts = {s for s, *_ in ROWS} - set(MODULES)
    assert set(SCRIPTS) == scripts, set(SCRIPTS) ^ scripts


AUDIOSET = ROOT.parent / 'shared' / 'data' / 'audioset'

@pytest.mark.skipif(not (AUDIOSET / 'ontology.json').exists(), reason='needs ../shared/data/audioset')
def test_hlp_on_a_real_segments_file_cut_short(tmp_path, monkeypatch, capsys):
    "Issue 21: AudioSet's balanced segments file cut inside line 55's labels said 'unknown MID /m/ on line 55'."
    lines = (AUDIOSET / 'balanced_train_segments.csv').read_text().splitlines(keepends=True)[:55]
    cut = tmp_path / 'balanced_train_segments.csv'
    cut.write_text(''.join(lines[:54]) + lines[54][:lines[54].index('"') + 4])   # ..., "/m/
    out = tmp_path / 'propagated.csv'
    code, _, err = run_command('audiojepa-hlp', [str(cut), '--ontology', str(AUDIOSET / 'ontology.json'), '--class-labels',
                                                 str(AUDIOSET / 'class_labels_indices.csv'), '--out', str(out)], monkeypatch, capsys)
    assert code == 2 and 'Traceback' not in err and not out.exists()
    assert err.strip().splitlines() == [f'audiojepa-hlp: error: {cut}: line 55 is incomplete (the file ends inside a quoted field: cut short?)']


def test_tag_skips_training_clips_the_ontology_does_not_know(inputs, tmp_path, monkeypatch, capsys, caplog, one_thread):
    "Issue 21's first traceback: no --classes, one training clip labelled /m/not_a_mid: skipped and listed, the rest trained on."
    clips = sorted((inputs / 'two').rglob('*.wav'))
    train = tmp_path / 'train.csv'
    train.write_text('path,labels\n' + ''.join(f"{p},{PIANO if 'low' in p.name else VIOLIN}\n" for p in clips[1:]) +
                     f'{clips[0]},/m/not_a_mid\n')
    run = tmp_path / 'run'
    code, out, err = run_command('audiojepa-tag', ['--model', 'cnn6', '--train', str(train), '--test', str(inputs / 'train.csv'),
                                                   '--ontology', str(inputs / 'ontology.json'), '--out', str(run),
                                                   '--max-steps', '2', '--batch-size', '2', '--clip-seconds', '0.5',
                                                   'model.options={width: 0.125}', 'data.sampler=random', 'run.progress=false'],
                                 monkeypatch, capsys)
    assert code in (0, None), err[-2000:]
    assert 'Traceback' not in out + err + caplog.text
    assert f'skipped {clips[0]}: unknown MID /m/not_a_mid' in caplog.text
    assert '/m/not_a_mid' in (run / 'skipped.csv').read_text() and str(clips[0]) in (run / 'skipped.csv').read_text()
    assert '/m/not_a_mid' not in (run / 'classes.csv').read_text()
    assert {PIANO, VIOLIN} <= set((run / 'classes.csv').read_text().split(','))
    assert json.loads((run / 'report.json').read_text())['clips'] == len(clips)
