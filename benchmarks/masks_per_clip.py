"""What many masks per clip cost: one training step of `AudioJEPA` with M context views per clip sharing one target pass.

For M in 1, 4, 8, 16 (`model.jepa.masks_per_clip`) the step is timed at B clips (B·M context rows, B target rows), next
to the step that gets the same B·M rows by repeating clips instead (M = 1 at B·M clips: the target encoder runs on
every row). The difference is what the shared target pass saves; the cost over M = 1 at B clips is what each extra
mask adds. Process CPU time per step, median of the timed steps, on one thread by default (the stable measure on a
shared machine); tiny preset, the default 2 s clip (192 frames × 96 mels), random masking at its default ratio.

    python -m benchmarks.masks_per_clip
    python -m benchmarks.masks_per_clip --masks 1,4,8,16 --batch 32 --threads 1 --out benchmarks/results/masks_per_clip.json
"""
import json, statistics
from pathlib import Path

import torch
from audiojepa.cli import dashed_call_parse
from audiojepa.masking import RandomPatchMask
from audiojepa.train import jepa_step
from .step import make, time_steps   # benchmarks/step.py: the library's step, timed the same way


def measure(preset, clips, views, frames, steps, warmup, seed=0):
    "Median process CPU and wall seconds of one `jepa_step` with `clips` clips, `views` masks each (benchmarks/step.py's timer)."
    model, opt = make(preset, torch.device('cpu'), 'fused', seed)
    mel = torch.randn(clips, frames, model.encoder.config.n_mels)
    ctx_idx, tgt_idx = RandomPatchMask()(clips * views, model.encoder.grid(frames), generator=seed)
    batch = {'mel': mel, 'context_idx': ctx_idx, 'target_idx': tgt_idx}
    no_autocast = lambda: torch.autocast('cpu', enabled=False)
    time_steps(jepa_step, model, opt, batch, no_autocast, torch.device('cpu'), warmup)
    wall, cpu = time_steps(jepa_step, model, opt, batch, no_autocast, torch.device('cpu'), steps)
    return statistics.median(cpu), statistics.median(wall)


@dashed_call_parse
def main(masks:str='1,4,8,16', # comma-separated masks per clip
         batch:int=32, # clips per step
         preset:str='tiny', # model preset
         frames:int=192, # frames per clip (the default 2 s clip)
         threads:int=1, # torch CPU threads
         steps:int=5, # timed steps per configuration
         warmup:int=2, # untimed steps per configuration
         out:str='', # optional JSON file for the results
        ):
    "Time a training step with M masks per clip against the same rows from repeated clips."
    torch.set_num_threads(threads)
    base_cpu, _ = measure(preset, batch, 1, frames, steps, warmup)
    rows = []
    for m in [int(x) for x in masks.split(',')]:
        shared_cpu, shared_wall = (base_cpu, None) if m == 1 else measure(preset, batch, m, frames, steps, warmup)
        repeated_cpu = base_cpu if m == 1 else measure(preset, batch * m, 1, frames, steps, warmup)[0]
        rows.append({'masks_per_clip': m, 'clips': batch, 'rows': batch * m, 'shared_target_cpu_s': shared_cpu,
                     'repeated_clips_cpu_s': repeated_cpu, 'saved': 1 - shared_cpu / repeated_cpu,
                     'cost_vs_one_mask': shared_cpu / base_cpu})
        r = rows[-1]
        print(f"M={m:2d}: {r['rows']:4d} rows, shared target pass {shared_cpu:.3f} s CPU/step ({r['cost_vs_one_mask']:.2f}x one mask), "
              f"repeated clips {repeated_cpu:.3f} s: the shared pass saves {100 * r['saved']:.0f} %", flush=True)
    result = {'preset': preset, 'batch': batch, 'frames': frames, 'threads': threads, 'torch': torch.__version__, 'rows': rows}
    if out: Path(out).parent.mkdir(parents=True, exist_ok=True); Path(out).write_text(json.dumps(result, indent=1))
    return result
