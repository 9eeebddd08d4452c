# Copyright (c) EVLab contributors.
"""The toy config trains through tools/train.py; the benchmark's smoke
mode runs and prints its tables and plot."""
import os.path as osp
import re

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
ONE_THREAD = {'OMP_NUM_THREADS': '1'}


def test_toy_config_trains_and_validates(toy_data, tool, tmp_path):
    work = tmp_path / 'work'
    res = tool([
        osp.join(ROOT, 'tools', 'train.py'),
        osp.join(ROOT, 'configs', 'issa', 'issa_r18-d16_toy_seg.py'),
        '--work-dir', str(work), '--cfg-options', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'val_dataloader.dataset.indices=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ], cwd=str(tmp_path), env=ONE_THREAD)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    losses = [float(v) for v in re.findall(r'decode\.loss_ce: ([0-9.]+)',
                                           out)]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses)
    assert re.search(r'mIoU: [0-9.]+', out)
    assert osp.isfile(work / 'iter_2.pth')


def test_benchmark_quick_mode(tmp_path, monkeypatch, capsys):
    """In this process (its imports are the expensive part), via main()."""
    import importlib.util
    import sys
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'issa_benchmark.py')
    spec = importlib.util.spec_from_file_location('issa_benchmark', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    png = tmp_path / 'memory.png'
    monkeypatch.setattr(sys, 'argv', [
        path, '--quick', '--threads', '1', '--channels', '32',
        '--key-channels', '16', '--in-channels', '64', '--plot', str(png)
    ])
    bench.main()
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines()
            if line.startswith('| 32x32 |')]
    assert len(rows) == 2, out
    # attention core: dense MiB, ISA MiB, ratio; at 32x32 ISA needs less
    dense_mib, isa_mib, ratio = (float(v) for v in rows[0].split('|')[2:5])
    assert isa_mib < dense_mib and 0 < ratio < 1
    assert 'Targets at 32x32' in out
    assert png.stat().st_size > 1000


def test_kernel_repro_script_finds_the_kink_and_no_wrong_kernel(tool):
    """tools/analysis_tools/onednn_grad_repro.py (docs/cpu_kernels.md): at
    a ReLU input moved to +-1e-7, float32 lands on either side (`kink`
    rows) and the float64 gradient jumps; no row is off without a flip."""
    res = tool([osp.join(ROOT, 'tools', 'analysis_tools',
                         'onednn_grad_repro.py'), '--only', 'kink',
                '--seeds', '2'], env=ONE_THREAD)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    jump = re.search(r'gradient of the head jumps by ([0-9.]+)', out)
    assert jump and float(jump.group(1)) > 0.01, out[-2000:]
    flips = re.search(r'(\d+) of (\d+) rows: float32 put a ReLU input',
                      out)
    assert flips and int(flips.group(1)) > 0, out[-2000:]
    assert re.search(r'\n0 of \d+ rows: off float64', out), out[-2000:]
