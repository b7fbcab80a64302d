"""Training-step throughput of `audiojepa.train.jepa_step` against a reference step written differently on purpose.

One step = masks given, forward (targets, context, prediction, loss, diagnostics), backward, AdamW step, EMA update.
The step timed is the library's own, `audiojepa.train.jepa_step` (what pretraining runs: fused attention, foreach
EMA, one target pass; fused AdamW here), with the diagnostics of a logged step. `reference_step` is the baseline it
is compared against, not a copy of it: it is written here the way a first implementation would be, on purpose:
explicit softmax attention (q·kᵀ → softmax → ·v), a Python loop over parameters for the EMA, and the full-length
target encoding run twice (once for the loss, once more for the diagnostics), and PyTorch's default AdamW
(`torch.optim.AdamW(params)`, which on CPU loops over parameters). It takes `jepa_step`'s arguments so that one timer
calls both; it is not meant to follow `jepa_step`'s changes. `--reference-optimizer fused` gives the reference the
same fused AdamW, which isolates the JEPA-specific savings. Same modules, same sizes; the two are timed in alternating
rounds so that load from other processes hits both alike.

FLOPs are counted once per configuration with `torch.utils.flop_counter.FlopCounterMode` on the optimised step
(matmuls and attention, forward and backward); achieved FLOP/s = those FLOPs / measured step time. The reference is
credited with the same useful FLOPs (its second target pass is waste by construction). Each step's wall-clock time
and the process's CPU time are recorded: on a shared machine the CPU-time ratio (run with --threads 1) is the more
stable comparison.

    python -m benchmarks.step                          # tiny, small, base on CPU (and bf16 on a GPU if one is there)
    python -m benchmarks.step --presets tiny --threads 2 --out benchmarks/results/step.json
    python -m benchmarks.step --reference-optimizer fused   # the same fused AdamW in both steps
    python -m benchmarks.step --cpu-dtypes fp32,bf16   # also both steps under CPU bf16 autocast
"""
import json, platform, statistics, time, types
from pathlib import Path

import torch
import torch.nn.functional as F
from audiojepa.cli import dashed_call_parse
from torch.utils.flop_counter import FlopCounterMode

from audiojepa.jepa import AudioJEPA, effective_rank, embedding_std
from audiojepa.masking import RandomPatchMask
from audiojepa.models import gather_tokens
from audiojepa.train import JEPAStepOutput, jepa_step

# dense bf16 tensor-core peaks (TFLOP/s) of common accelerators, to express the GPU result as a fraction of peak
BF16_PEAK_TFLOPS = {'H200': 989.0, 'H100': 989.0, 'A100': 312.0, 'L4': 121.0, 'A10': 125.0, 'RTX 4090': 165.0}


def manual_attention(self, x, attn_mask=None, is_causal=False):
    "Reference attention: explicit scores, softmax and weighted sum (replaces timm's fused path)."
    B, N, C = x.shape
    q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
    scores = (q @ k.transpose(-2, -1)) * self.scale
    if attn_mask is not None: scores = scores.masked_fill(~attn_mask, float('-inf'))
    out = scores.softmax(dim=-1) @ v
    return self.proj(out.transpose(1, 2).reshape(B, N, C))


def use_manual_attention(model):
    for module in model.modules():
        if hasattr(module, 'qkv') and hasattr(module, 'num_heads'):
            module.forward = types.MethodType(manual_attention, module)


def reference_step(model, opt, micro_batches, ema, diagnostics=True) -> JEPAStepOutput:
    "The baseline, naive on purpose (not a copy of `jepa_step`): targets encoded twice, per-parameter EMA loop; one micro-batch."
    batch = next(iter(micro_batches))
    mel, ctx_idx, tgt_idx, D = batch['mel'], batch['context_idx'], batch['target_idx'], model.encoder.embed_dim
    with torch.no_grad():
        target = F.layer_norm(gather_tokens(model.target_encoder(mel), tgt_idx), (D,))
    grid = model.encoder.grid(mel.shape[1])
    pred = model.predictor(model.encoder(mel, keep_idx=ctx_idx), ctx_idx, tgt_idx, grid)
    loss = (pred.float() - target.float()).pow(2).mean()
    diag = None
    if diagnostics:
        with torch.no_grad():   # from a second full target pass
            again = F.layer_norm(gather_tokens(model.target_encoder(mel), tgt_idx), (D,))
            diag = {'target_std': embedding_std(again), 'pred_std': embedding_std(pred),
                    'target_rank': effective_rank(again), 'pred_rank': effective_rank(pred)}
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        for t, s in zip(model.target_encoder.parameters(), model.encoder.parameters()):
            t.mul_(ema).add_(s, alpha=1 - ema)
    return JEPAStepOutput([loss.detach()], mel.shape[0], diagnostics=diag)


STEPS = {'audiojepa': jepa_step, 'reference': reference_step}   # both called as jepa_step(model, opt, [batch], ema, diagnostics=True)


OPTIMIZERS = {'fused': {'fused': True}, 'foreach': {'foreach': True}, 'default': {}}


def make(preset, device, optimizer, seed=0):
    torch.manual_seed(seed)
    model = AudioJEPA.from_preset(preset).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, **OPTIMIZERS[optimizer])
    return model, opt


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def count_flops(step, model, opt, batch):
    "FLOPs of one step in fp32 (the model's FLOPs, whichever attention path a precision takes)."
    with FlopCounterMode(display=False) as counter:
        step(model, opt, [batch], 0.999, diagnostics=True)
    return counter.get_total_flops()


def time_steps(step, model, opt, batch, autocast, device, n):
    "Wall-clock and process CPU seconds of `n` steps of `step` (one of `STEPS`) on the micro-batch `batch`, with diagnostics."
    wall, cpu = [], []
    for _ in range(n):
        sync(device); t0, c0 = time.perf_counter(), time.process_time()
        with autocast(): out = step(model, opt, [batch], 0.999, diagnostics=True)
        out.losses[0].item()   # waits for the result, as logging the loss would
        sync(device); wall.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    return wall, cpu


def bench(preset, device, batch_size, frames, warmup, rounds, steps_per_round, bf16, optimizer, reference_optimizer):
    dt = torch.bfloat16 if bf16 else None
    autocast = (lambda: torch.autocast(device.type, dtype=dt)) if bf16 else (lambda: torch.autocast(device.type, enabled=False))
    mel = torch.randn(batch_size, frames, 96, device=device)
    ctx_idx, tgt_idx = RandomPatchMask(0.5)(batch_size, (frames // 16, 6), generator=0)
    batch = {'mel': mel, 'context_idx': ctx_idx.to(device), 'target_idx': tgt_idx.to(device)}
    models = {'audiojepa': make(preset, device, optimizer), 'reference': make(preset, device, reference_optimizer)}
    use_manual_attention(models['reference'][0])
    flops = count_flops(jepa_step, *models['audiojepa'], batch)
    for name, (m, o) in models.items():
        time_steps(STEPS[name], m, o, batch, autocast, device, warmup)
    times = {'audiojepa': ([], []), 'reference': ([], [])}
    for _ in range(rounds):   # alternate so background load hits both
        for name, (m, o) in models.items():
            wall, cpu = time_steps(STEPS[name], m, o, batch, autocast, device, steps_per_round)
            times[name][0].extend(wall); times[name][1].extend(cpu)
    r = {'preset': preset, 'device': device.type, 'dtype': 'bf16' if bf16 else 'fp32', 'optimizer': optimizer, 'reference_optimizer': reference_optimizer,
         'batch_size': batch_size, 'frames': frames, 'gflop_per_step': flops / 1e9}
    for name, (wall, cpu) in times.items():
        r[f'{name}_step_s'], r[f'{name}_cpu_s'] = statistics.median(wall), statistics.median(cpu)
        r[f'{name}_clips_per_s'] = batch_size / r[f'{name}_step_s']
        r[f'{name}_tflops'] = flops / r[f'{name}_step_s'] / 1e12
    r['speedup'] = r['reference_step_s'] / r['audiojepa_step_s']
    r['speedup_cpu_time'] = r['reference_cpu_s'] / r['audiojepa_cpu_s']
    return r


@dashed_call_parse
def main(presets:str='tiny,small,base', # comma-separated presets
         cpu_batch:str='tiny:8,small:4,base:2', # batch size per preset on CPU
         gpu_batch:int=64, # batch size on GPU
         frames:int=512, # frames per clip (10 s)
         threads:int=2, # CPU threads for torch
         rounds:int=5, # alternating timing rounds
         steps:int=2, # timed steps per round and model
         optimizer:str='fused', # AdamW of the optimised step: 'fused', 'foreach' or 'default' (for-loop on CPU)
         reference_optimizer:str='default', # AdamW of the reference step (same choices)
         warmup:int=2, # untimed steps per model
         cpu_dtypes:str='fp32', # comma-separated CPU precisions to run: fp32 and/or bf16 (autocast)
         gpu:bool=True, # also run bf16 on a CUDA device when one is there
         out:str='', # optional JSON file for the results
        ):
    for o in (optimizer, reference_optimizer):
        if o not in OPTIMIZERS: raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {o!r}")
    torch.set_num_threads(threads)
    sizes = dict(kv.split(':') for kv in cpu_batch.split(','))
    results = []
    runs = [(p, torch.device('cpu'), int(sizes.get(p, 2)), dtype == 'bf16')
            for dtype in cpu_dtypes.split(',') for p in presets.split(',')]
    if gpu and torch.cuda.is_available():
        runs += [(p, torch.device('cuda'), gpu_batch, True) for p in presets.split(',')]
    for preset, device, bs, bf16 in runs:
        r = bench(preset, device, bs, frames, warmup, rounds, steps, bf16, optimizer, reference_optimizer)
        if device.type == 'cuda':
            name = torch.cuda.get_device_name()
            peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
            r.update(gpu=name, bf16_peak_tflops=peak, fraction_of_peak=None if peak is None else r['audiojepa_tflops'] / peak)
        results.append(r)
        print(f"{preset:5s} {device.type:4s} {r['dtype']} B={bs:<3d} {r['gflop_per_step']:8.1f} GFLOP/step | "
              f"audiojepa {r['audiojepa_clips_per_s']:8.2f} clips/s {r['audiojepa_tflops']*1e3:8.1f} GFLOP/s | "
              f"reference {r['reference_clips_per_s']:8.2f} clips/s {r['reference_tflops']*1e3:8.1f} GFLOP/s | "
              f"speedup {r['speedup']:.2f}x (CPU time {r['speedup_cpu_time']:.2f}x)", flush=True)
    info = {'torch': torch.__version__, 'threads': threads, 'machine': platform.processor() or platform.machine(),
            'results': results}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(info, indent=2))
