"""SoundFonts and fluidsynth for `experiments/corpora.py`: read a SoundFont's presets and samples, find the recordings
two SoundFonts share, write MIDI and render it with the fluidsynth command line.

Two SoundFonts "share a recording" when a sample of one is the same audio as a sample of the other, whatever its name,
sample rate or codec (MuseScore_General_Lite.sf3 is, for 869 of its 1254 samples, FluidR3_GM.sf2's recordings
compressed): `sample_fingerprints` resamples the start of every sample to 8 kHz and `shared_samples` pairs samples of
about the same duration whose fingerprints correlate above 0.9 at some lag within 4 ms.
"""
import io, shutil, struct, subprocess, tempfile
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from audiojepa.audio import load_audio

SR = 32000                         # the rate renders are made at (the corpora's rate)
FINGERPRINT_RATE = 8000            # a sample's fingerprint: its first FINGERPRINT_SECONDS at this rate
FINGERPRINT_SECONDS = 0.5
MATCH_LAG = 32                     # lags searched, in fingerprint samples either way (4 ms)
MATCH_CORRELATION = 0.9            # two recordings of independent sounds correlate near 0; a recoded one near 1


# ---------------------------------------------------------------------------------------------------- SoundFonts
def _riff_chunks(b:bytes, off:int, end:int):
    while off + 8 <= end:
        cid, n = b[off:off + 4], struct.unpack('<I', b[off + 4:off + 8])[0]
        yield cid, off + 8, n
        nxt = off + 8 + n
        if n & 1 and not b[nxt:nxt + 4].isalnum(): nxt += 1   # RIFF pads odd chunks; some sf3 writers do not
        off = nxt

def soundfont_presets(path) -> dict:
    "{(bank, program): (preset name, {key: set of sample names})} read from a .sf2/.sf3 file's preset data."
    try: pd = _pdta_and_samples(Path(path).read_bytes())[0]
    except ValueError as e: raise ValueError(f'{path}: {e}') from None
    recs = lambda key, size, fmt: [struct.unpack(fmt, pd[key][i:i + size]) for i in range(0, len(pd[key]) - size + 1, size)]
    phdr, pbag, pgen = recs('phdr', 38, '<20sHHH12x'), recs('pbag', 4, '<HH'), recs('pgen', 4, '<HH')
    inst, ibag, igen = recs('inst', 22, '<20sH'), recs('ibag', 4, '<HH'), recs('igen', 4, '<HH')
    shdr = [s[0].split(b'\0')[0].decode('latin1') for s in recs('shdr', 46, '<20s26x')]
    def zones(bags, gens, b0, b1):
        for z in range(b0, b1): yield {gens[k][0]: gens[k][1] for k in range(bags[z][0], bags[z + 1][0])}
    krange = lambda g: (g.get(43, 0x7F00) & 0xFF, g.get(43, 0x7F00) >> 8)   # generator 43: key range lo, hi
    out = {}
    for i, (name, prog, bank, bag) in enumerate(phdr[:-1]):
        keys = defaultdict(set)
        for pz in zones(pbag, pgen, bag, phdr[i + 1][3]):
            if 41 not in pz: continue                                              # 41: instrument
            plo, phi = krange(pz); ii = pz[41]
            for iz in zones(ibag, igen, inst[ii][1], inst[ii + 1][1]):
                if 53 not in iz: continue                                          # 53: sample
                lo, hi = krange(iz)
                for k in range(max(lo, plo), min(hi, phi) + 1): keys[k].add(shdr[iz[53]])
        out[(bank, prog)] = (name.split(b'\0')[0].decode('latin1'), dict(keys))
    return out


def _pdta_and_samples(b:bytes) -> tuple:
    "({sub-chunk id: bytes} of the preset data, the sample data chunk) of a SoundFont file's bytes."
    if b[:4] != b'RIFF' or b[8:12] != b'sfbk': raise ValueError('not a SoundFont')
    pd, smpl = {}, b''
    for cid, o, n in _riff_chunks(b, 12, len(b)):
        if cid != b'LIST': continue
        for c2, o2, n2 in _riff_chunks(b, o + 4, o + n):
            if b[o:o + 4] == b'pdta': pd[c2.decode()] = b[o2:o2 + n2]
            elif c2 == b'smpl': smpl = b[o2:o2 + n2]
    return pd, smpl

@lru_cache(maxsize=8)
def sample_fingerprints(path, # .sf2/.sf3 file
                       ) -> dict: # {sample name: (duration in seconds, float32 fingerprint)}
    "Every sample's duration and its first FINGERPRINT_SECONDS at FINGERPRINT_RATE, scaled to unit norm (sf3: decoded)."
    pd, smpl = _pdta_and_samples(Path(path).read_bytes())
    out = {}
    for i in range(0, len(pd['shdr']) - 46 + 1, 46):
        name, start, end, _, _, rate, _, _, _, kind = struct.unpack('<20sIIIIIBbHH', pd['shdr'][i:i + 46])
        name = name.split(b'\0')[0].decode('latin1')
        if end <= start or rate == 0 or name in out: continue               # the terminal 'EOS' record; a repeated name
        if kind & 0x10: x = sf.read(io.BytesIO(smpl[start:end]), dtype='float32')[0]   # sf3: an Ogg Vorbis stream
        else: x = np.frombuffer(smpl[2 * start:2 * end], '<i2').astype(np.float32) / 32768
        if x.ndim > 1: x = x.mean(1)
        fp = fingerprint(x, rate)
        if fp is not None: out[name] = (len(x) / rate, fp)
    return out

def fingerprint(x:np.ndarray, # a recording's samples
                rate:int, # its sample rate
               ) -> np.ndarray|None: # float32 of unit norm (None for digital silence)
    "The first FINGERPRINT_SECONDS of a recording at FINGERPRINT_RATE (band-limited resampling by FFT: any rate, fast)."
    head = np.asarray(x[:int(rate * FINGERPRINT_SECONDS)], dtype=np.float64)
    n = max(1, int(round(len(head) * FINGERPRINT_RATE / rate)))
    fp = np.fft.irfft(np.fft.rfft(head)[:n // 2 + 1], n)
    norm = float(np.linalg.norm(fp))
    return (fp / norm).astype(np.float32) if norm > 0 else None

def _correlation(a:np.ndarray, b:np.ndarray) -> float:
    "The largest normalised correlation of two fingerprints over lags up to MATCH_LAG, on their common length."
    m = min(len(a), len(b))
    if m < 4 * MATCH_LAG: return 0.
    a, b = a[:m], b[:m]
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.abs(np.correlate(np.pad(a, MATCH_LAG), b, 'valid')).max() / den) if den > 0 else 0.

def match_samples(a:dict, # `sample_fingerprints` of one SoundFont
                  b:dict, # ... of another
                  duration_tolerance:float=0.03, # relative difference of duration allowed
                 ) -> set: # {(name in a, name in b)}
    "Pairs of samples, one of each, that are the same recording: about the same duration, fingerprints correlating."
    names = sorted(a, key=lambda n: a[n][0]); durs = np.array([a[n][0] for n in names])
    out = set()
    for nb, (db, fb) in sorted(b.items()):
        lo, hi = np.searchsorted(durs, db * (1 - duration_tolerance) - 0.005), np.searchsorted(durs, db * (1 + duration_tolerance) + 0.005)
        out |= {(na, nb) for na in names[lo:hi] if _correlation(a[na][1], fb) > MATCH_CORRELATION}
    return out

@lru_cache(maxsize=32)
def shared_samples(a, b) -> frozenset:
    "{(sample of SoundFont file `a`, sample of `b`)} that are the same recording (see `match_samples`)."
    return frozenset(match_samples(sample_fingerprints(str(a)), sample_fingerprints(str(b))))

def preset_samples(presets:dict, # `soundfont_presets` of a SoundFont
                   bank:int, program:int,
                   keys=None, # the keys played (None: all)
                  ) -> set:
    "The names of the samples a preset plays on `keys`."
    zones = presets[(bank, program)][1]
    return {s for k, names in zones.items() if keys is None or k in keys for s in names}


# ---------------------------------------------------------------------------------------------------- MIDI + fluidsynth
TICKS_PER_SECOND = 2000            # division 1000 per quarter at 120 bpm (tempo 500000 us)

def _vlq(n:int) -> bytes:
    out = [n & 0x7F]; n >>= 7
    while n: out.append(0x80 | (n & 0x7F)); n >>= 7
    return bytes(reversed(out))

def midi_file(events, # (seconds, status byte, data bytes...) tuples
             ) -> bytes: # a format-0 Standard MIDI File
    "A Standard MIDI File of timed channel messages; at equal times the messages keep their order."
    track, last = bytearray(b'\x00\xff\x51\x03' + (500000).to_bytes(3, 'big')), 0
    for t, *msg in sorted(events, key=lambda e: int(round(e[0] * TICKS_PER_SECOND))):
        tick = int(round(t * TICKS_PER_SECOND))
        track += _vlq(tick - last) + bytes(msg); last = tick
    track += b'\x00\xff\x2f\x00'
    return b'MThd' + struct.pack('>IHHH', 6, 0, 1, 1000) + b'MTrk' + struct.pack('>I', len(track)) + bytes(track)

def fluidsynth_available() -> bool: return shutil.which('fluidsynth') is not None

def render_midi(soundfont, # .sf2/.sf3 path
                events, # see `midi_file`
                sample_rate:int=SR,
                gain:float=1.,
               ) -> np.ndarray: # mono float32 samples
    "Render MIDI events with the fluidsynth command line (reverb and chorus off, float output: no dither)."
    with tempfile.TemporaryDirectory(prefix='corpora-') as tmp:
        mid, wav = Path(tmp) / 'in.mid', Path(tmp) / 'out.wav'
        mid.write_bytes(midi_file(events))
        cmd = ['fluidsynth', '-ni', '-q', '-R', '0', '-C', '0', '-g', str(gain), '-r', str(sample_rate),
               '-O', 'float', '-T', 'wav', '-F', str(wav), str(soundfont), str(mid)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not wav.exists():
            raise RuntimeError(f'fluidsynth failed ({r.returncode}): {r.stderr.strip()[-500:]}')
        return load_audio(wav, sample_rate).numpy()


@dataclass(frozen=True)
class Note:
    bank:int         # 128: a drum kit, played on MIDI channel 10
    program:int
    pitch:int
    velocity:int
    duration:float   # seconds from note-on to note-off

def render_notes(soundfont, # .sf2/.sf3 path
                 notes:list, # `Note`s, each rendered into its own clip
                 clip_seconds:float=2., # clip length; every voice is cut off at its end
                 gap:float=0.1, # silence between clips in the render
                 batch:int=400, # notes per fluidsynth call
                 sample_rate:int=SR,
                 gain:float=1.,
                ) -> list: # one float32 array of `clip_seconds` per note
    "Render single notes, many per fluidsynth call (all sound off at each clip's end), and cut them apart."
    step, L, out = clip_seconds + gap, int(round(clip_seconds * sample_rate)), []
    for lo in range(0, len(notes), batch):
        events, last = [], {}
        for i, n in enumerate(notes[lo:lo + batch]):
            t, ch = i * step, 9 if n.bank == 128 else 0
            if last.get(ch) != (n.bank, n.program):
                if ch == 0: events += [(t, 0xB0, 0, n.bank >> 7 & 0x7F), (t, 0xB0, 32, n.bank & 0x7F)]
                events.append((t, 0xC0 | ch, n.program)); last[ch] = (n.bank, n.program)
            events += [(t, 0x90 | ch, n.pitch, n.velocity), (t + min(n.duration, clip_seconds), 0x80 | ch, n.pitch, 0),
                       (t + clip_seconds, 0xB0 | ch, 120, 0)]            # 120: all sound off (no release tail)
        count = len(notes[lo:lo + batch])
        events.append((count * step, 0xB0, 121, 0))                       # ends the file after the last gap
        wav = render_midi(soundfont, events, sample_rate, gain)
        for i in range(count):
            start = int(round(i * step * sample_rate))
            clip = wav[start:start + L]
            out.append(np.pad(clip, (0, L - len(clip))) if len(clip) < L else clip)
    return out

