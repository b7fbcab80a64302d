"""`audiojepa.hear` against HEAR 2021's API, with the tiny preset.

Two routes to HEAR's own checks. `hearvalidator` 2021.0.2 (PyPI) imports TensorFlow at its top and calls it only for
TensorFlow models, so `test_hear_validator_passes` runs the validator itself, its torch checks, with a stand-in module
in the place of `tensorflow` (when `hearvalidator` is installed: `pip install --no-deps hearvalidator==2021.0.2`;
otherwise it is skipped and says why). `test_the_validators_checks` makes the same checks without it (batch sizes,
float32, the declared sizes, timestamps evenly spaced), always, plus what the validator does not check: timestamps
that increase and whose frames lie in the sound, and a sound's embeddings that do not depend on its batch.
"""
import importlib.util, sys, types

import pytest
import torch

from audiojepa import hear

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def model():
    return hear.load_model('random:tiny')


def test_hear_validator_passes(monkeypatch, capsys):
    if importlib.util.find_spec('hearvalidator') is None:
        pytest.skip('hearvalidator is not installed (pip install --no-deps hearvalidator==2021.0.2); '
                    'test_the_validators_checks makes its checks without it')
    tensorflow = types.ModuleType('tensorflow')   # the validator only asks `isinstance(model, tf.Module)` of a torch model
    tensorflow.Module = type('Module', (), {})
    monkeypatch.setitem(sys.modules, 'tensorflow', tensorflow)
    monkeypatch.delitem(sys.modules, 'hearvalidator.validate', raising=False)
    from hearvalidator.validate import ValidateModel
    ValidateModel('audiojepa.hear', 'random:tiny', device='cpu')()      # raises ModelError on any failed check
    out = capsys.readouterr().out
    assert 'Checking get_timestamp_embeddings' in out and 'Checking get_scene_embeddings' in out


def test_the_validators_checks(model):
    "What `hearvalidator` checks of a torch model, on the same inputs: 16 × 2 s and 8 × 3.74 s of white noise."
    assert isinstance(model, torch.nn.Module) and model.sample_rate in (16000, 22050, 44100, 48000)
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    audio = torch.rand(16, int(2.0 * model.sample_rate)) * 2 - 1
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.dtype == torch.float32 and embeddings.shape[0] == 16
    assert embeddings.shape[:2] == timestamps.shape and embeddings.shape[2] == model.timestamp_embedding_size
    steps = torch.diff(timestamps)
    assert steps.mean() <= 50.0                                        # the validator only warns above 50 ms
    assert torch.all(torch.abs(steps - steps.mean()) < 1e-3)           # evenly spaced
    audio = torch.rand(8, int(3.74 * model.sample_rate)) * 2 - 1
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.dtype == torch.float32 and scene.shape == (8, model.scene_embedding_size)


def test_timestamps_and_batches(model):
    "Timestamps increase and belong to the sound; a sound's embeddings are the ones it gets alone."
    gen = torch.Generator().manual_seed(0)
    audio = torch.rand(3, int(1.5 * model.sample_rate), generator=gen) * 2 - 1
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert (torch.diff(timestamps) > 0).all() and timestamps[0, 0] > 0
    assert timestamps[0, -1] - model.first_frame_ms < 1500                 # the last frame's column starts inside the sound
    alone, alone_stamps = hear.get_timestamp_embeddings(audio[1:2], model)
    torch.testing.assert_close(alone[0], embeddings[1], atol=1e-5, rtol=1e-5)
    assert torch.equal(alone_stamps[0], timestamps[1])
    torch.testing.assert_close(hear.get_scene_embeddings(audio[2:], model)[0], hear.get_scene_embeddings(audio, model)[2], atol=1e-5, rtol=1e-5)


def test_layers_and_rate_by_argument_and_environment(monkeypatch):
    wide = hear.load_model('random:tiny', layers='all', frames_per_column=2)
    assert wide.scene_embedding_size == wide.timestamp_embedding_size == 4 * 128
    assert wide.timestamps.hop_size_in_ms == 312.5 / 2
    monkeypatch.setenv('AUDIOJEPA_ENCODER', 'random:tiny')
    monkeypatch.setenv('AUDIOJEPA_LAYERS', '3,4:mean')
    from_env = hear.load_model()                                         # as HEAR's runner calls it, with no path
    assert from_env.scene.layers.spec == '3,4:mean' and from_env.scene_embedding_size == 128
