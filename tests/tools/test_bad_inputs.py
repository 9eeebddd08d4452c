# Copyright (c) EVLab contributors.
"""Bad inputs give one clear error line (exit code 2), not a traceback.

The runs are forked from a tool server (tests/conftest.py, ``run_tool``).
One starts a new interpreter, so that a bare start of train.py is checked
to be quiet and wired up too: test_unknown_type (mmpretrain). (A bare
start costs about 25 s of the suite; test.py's is the same wiring,
``projects.common.runtime.cli``.)"""
import argparse
import importlib
import json
import os
import os.path as osp
import shutil
import subprocess

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')
CLS = osp.join(ROOT, 'configs/baselines/resnet18_toy_cls.py')
FAST = ['train_cfg.max_epochs=1', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False']


def _assert_clear_error(res, *needles):
    err = res.stderr
    assert res.returncode == 2, res.stdout[-2000:] + err[-2000:]
    assert 'Traceback' not in err, err[-3000:]
    assert err.count('\n') <= 4, err
    assert err.startswith('error: ') or '\nerror: ' in err, err
    for needle in needles:
        assert needle in err, err


def test_missing_config(tool, tmp_path):
    res = tool([TRAIN, 'configs/no/such_config.py'], cwd=str(tmp_path))
    _assert_clear_error(res, 'configs/no/such_config.py', 'does not exist')


def test_unknown_type(tool, tmp_path, toy_data):
    cfg = tmp_path / 'bad_type.py'
    cfg.write_text(f"_base_ = ['{CLS}']\n"
                   "model = dict(backbone=dict(type='NoSuchNet'))\n")
    res = tool([TRAIN, str(cfg), '--work-dir', str(tmp_path / 'w')],
               cwd=str(tmp_path), fresh=True)
    _assert_clear_error(res, 'NoSuchNet', 'unknown `type`', 'custom_imports')


def test_missing_dataset_folder(tool, tmp_path):
    res = tool([TRAIN, CLS, '--work-dir', str(tmp_path / 'w'),
                '--cfg-options',
                'train_dataloader.dataset.data_root=/no/such/toy_cls'],
               cwd=str(tmp_path))
    _assert_clear_error(res, '/no/such/toy_cls',
                        'train_dataloader.dataset.data_root',
                        'tools/misc/make_toy_data.py')


@pytest.mark.parametrize('workers', [0, 1])
def test_corrupt_image(tool, tmp_path, toy_data, workers):
    src = osp.join(toy_data, 'toy_cls')
    dst = tmp_path / 'toy_cls'
    shutil.copytree(src, dst)
    lines = (dst / 'meta' / 'train.txt').read_text().split('\n')[:8]
    (dst / 'meta' / 'train.txt').write_text('\n'.join(lines) + '\n')
    bad = dst / 'train' / lines[3].split()[0]
    bad.write_bytes(b'not a jpeg at all')
    res = tool([TRAIN, CLS, '--work-dir', str(tmp_path / 'w'),
                '--cfg-options', f'train_dataloader.dataset.data_root={dst}',
                'train_dataloader.batch_size=4', 'train_cfg.val_interval=5'] +
               FAST + [f'train_dataloader.num_workers={workers}'],
               cwd=str(tmp_path))
    _assert_clear_error(res, str(bad), 'could not be read')


def test_truncated_checkpoint(tool, tmp_path, toy_data):
    path = tmp_path / 'cut.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])
    res = tool([TEST, CLS, str(path), '--work-dir', str(tmp_path / 'w')],
               cwd=str(tmp_path))
    _assert_clear_error(res, str(path), 'truncated or corrupt')


def test_resume_from_missing_checkpoint(tool, tmp_path):
    res = tool([TRAIN, CLS, '--resume', str(tmp_path / 'nope.pth')],
               cwd=str(tmp_path))
    _assert_clear_error(res, 'nope.pth', 'does not exist')


# -- section 4 of issue 13: data, options, checkpoints, config keys ---------
DET = osp.join(ROOT, 'configs/baselines/retinanet_r18_toy_det.py')
TEST_FAST = ['test_dataloader.num_workers=0',
             'test_dataloader.persistent_workers=False']


def _small_coco(src, dst, num_images=3):
    """The toy detection set in ``dst`` with ``num_images`` val images;
    returns the val annotation file."""
    shutil.copytree(osp.join(src, 'toy_det'), dst)
    ann = dst / 'annotations' / 'instances_val.json'
    coco = json.loads(ann.read_text())
    coco['images'] = coco['images'][:num_images]
    ids = {img['id'] for img in coco['images']}
    coco['annotations'] = [a for a in coco['annotations']
                           if a['image_id'] in ids]
    ann.write_text(json.dumps(coco))
    return ann


def _det_test_options(dst, ann):
    return ['--cfg-options', f'test_dataloader.dataset.data_root={dst}/',
            f'test_evaluator.ann_file={ann}'] + TEST_FAST


def _small_cls(src, dst, num_lines=8):
    """The toy classification set in ``dst``, train list cut to
    ``num_lines``; returns the lines."""
    shutil.copytree(osp.join(src, 'toy_cls'), dst)
    lines = (dst / 'meta' / 'train.txt').read_text().split('\n')[:num_lines]
    (dst / 'meta' / 'train.txt').write_text('\n'.join(lines) + '\n')
    return lines


@pytest.fixture(scope='module')
def model_checkpoint(tmp_path_factory):
    """``make(config, **model_overrides)``: the path of a checkpoint of
    the (untrained) model of ``config``, written once per model."""
    from projects.common.distill import build_model
    made = {}

    def make(config, **overrides):
        key = (config, json.dumps(overrides, sort_keys=True))
        if key not in made:
            model = build_model(dict(cfg_path=config, **overrides))
            path = tmp_path_factory.mktemp('ckpt') / 'model.pth'
            torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
            made[key] = str(path)
        return made[key]

    return make


def test_truncated_coco_json(tool, tmp_path, toy_data, model_checkpoint):
    dst = tmp_path / 'toy_det'
    ann = _small_coco(toy_data, dst)
    ann.write_bytes(ann.read_bytes()[:-300])
    res = tool([TEST, DET, model_checkpoint(DET), '--work-dir',
                str(tmp_path / 'w')] + _det_test_options(dst, ann),
               cwd=str(tmp_path))
    _assert_clear_error(res, f'annotation file {str(ann)!r}',
                        '(test_dataloader.dataset)', 'not valid JSON',
                        'truncated or corrupt')


@pytest.mark.parametrize('workers', [0, 1])
def test_coco_image_missing_on_disk(tool, tmp_path, toy_data,
                                    model_checkpoint, workers):
    dst = tmp_path / 'toy_det'
    ann = _small_coco(toy_data, dst)
    name = json.loads(ann.read_text())['images'][1]['file_name']
    (dst / 'val' / name).unlink()
    res = tool([TEST, DET, model_checkpoint(DET), '--work-dir',
                str(tmp_path / 'w')] + _det_test_options(dst, ann) +
               [f'test_dataloader.num_workers={workers}'],
               cwd=str(tmp_path))
    _assert_clear_error(res, f'image {str(dst / "val" / name)!r} does not '
                        f'exist', f'annotation file {str(ann)!r}',
                        '(test_dataloader.dataset)')


def test_cfg_option_of_wrong_type(tool, tmp_path):
    res = tool([TRAIN, CLS, '--work-dir', str(tmp_path / 'w'),
                '--cfg-options', 'train_dataloader.batch_size=abc'],
               cwd=str(tmp_path))
    _assert_clear_error(
        res, "--cfg-options train_dataloader.batch_size=abc: expected an "
        "integer, got the string 'abc' (the config has "
        "train_dataloader.batch_size=32)")


@pytest.mark.parametrize('option, value, expected', [
    ('train_dataloader.num_workers', 1.5, 'expected an integer, got 1.5'),
    ('optim_wrapper.optimizer.lr', '2e-3x',
     "expected a number, got the string '2e-3x'"),
    ('train_dataloader.persistent_workers', 'no', 'expected True or False'),
    # keys the config does not set are checked by their name
    ('val_cfg.max_iters', 'ten', 'expected an integer'),
])
def test_cfg_option_types_in_process(option, value, expected):
    from projects.common import runtime
    from projects.common.errors import EVLabError
    with pytest.raises(EVLabError) as info:
        runtime.load_config(CLS, {option: value})
    assert str(info.value).startswith(f'--cfg-options {option}={value}: '
                                      f'{expected}'), info.value
    # numbers, ints for floats, None and 0/1 for bools pass
    cfg = runtime.load_config(CLS, {
        'optim_wrapper.optimizer.lr': 1, 'train_dataloader.batch_size': 4,
        'randomness.seed': None, 'train_dataloader.persistent_workers': 0})
    assert cfg.train_dataloader.batch_size == 4


def test_label_beyond_num_classes(tool, tmp_path, toy_data):
    dst = tmp_path / 'toy_cls'
    lines = _small_cls(toy_data, dst)
    lines[2] = lines[2].rsplit(' ', 1)[0] + ' 57'
    ann = dst / 'meta' / 'train.txt'
    ann.write_text('\n'.join(lines) + '\n')
    res = tool([TRAIN, CLS, '--work-dir', str(tmp_path / 'w'),
                '--cfg-options', f'train_dataloader.dataset.data_root={dst}',
                f'val_dataloader.dataset.data_root={dst}'] + FAST,
               cwd=str(tmp_path))
    _assert_clear_error(res, f'annotation file {str(ann)!r}', 'line 3',
                        'label 57', "model's 10 classes",
                        'model.head.num_classes=10')


def test_truncated_label_file(tool, tmp_path, toy_data):
    dst = tmp_path / 'toy_cls'
    _small_cls(toy_data, dst)
    ann = dst / 'meta' / 'train.txt'
    ann.write_bytes(ann.read_bytes()[:-5])  # the last line loses its label
    res = tool([TRAIN, CLS, '--work-dir', str(tmp_path / 'w'),
                '--cfg-options', f'train_dataloader.dataset.data_root={dst}',
                f'val_dataloader.dataset.data_root={dst}'] + FAST,
               cwd=str(tmp_path))
    _assert_clear_error(res, f'annotation file {str(ann)!r}', 'line 8',
                        'expected "<image path> <class index>"')


def test_empty_coco_test_set(tool, tmp_path, toy_data, model_checkpoint):
    dst = tmp_path / 'toy_det'
    ann = _small_coco(toy_data, dst, num_images=0)
    res = tool([TEST, DET, model_checkpoint(DET), '--work-dir',
                str(tmp_path / 'w')] + _det_test_options(dst, ann),
               cwd=str(tmp_path))
    _assert_clear_error(res, 'test_dataloader.dataset has no images',
                        f'annotation file {str(ann)!r}')


def test_empty_label_file(tool, tmp_path, toy_data):
    dst = tmp_path / 'toy_cls'
    _small_cls(toy_data, dst)
    (dst / 'meta' / 'val.txt').write_text('')
    ckpt = tmp_path / 'any.pth'
    ckpt.write_bytes(b'')  # the pre-flight stops before it is read
    res = tool([TEST, CLS, str(ckpt), '--work-dir', str(tmp_path / 'w'),
                '--cfg-options', f'test_dataloader.dataset.data_root={dst}'],
               cwd=str(tmp_path))
    _assert_clear_error(res, 'test_dataloader.dataset has no images',
                        str(dst / 'meta' / 'val.txt'), 'is empty')


def test_checkpoint_of_another_model(tool, tmp_path, toy_data,
                                     model_checkpoint):
    # the same network at another width: every weight has another shape
    other = model_checkpoint(CLS, backbone=dict(stem_channels=16,
                                                base_channels=16),
                             head=dict(in_channels=128, num_classes=5))
    args = [TEST, CLS, other, '--work-dir', str(tmp_path / 'w'),
            '--cfg-options', 'test_dataloader.dataset.indices=4',
            'test_dataloader.batch_size=4'] + TEST_FAST
    res = tool(args, cwd=str(tmp_path))
    _assert_clear_error(res, f'checkpoint {other!r} matches 0 of ',
                        f'the model in {CLS!r}', 'of another shape',
                        'Pass --allow-partial-checkpoint to evaluate anyway')
    res = tool(args + ['--allow-partial-checkpoint'], cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert 'warning: checkpoint' in res.stderr
    assert 'accuracy/top1' in res.stdout + res.stderr


def test_checkpoint_of_the_model_fits(model_checkpoint):
    """Its own checkpoint fits a model; for a distiller, the full
    distiller checkpoint and (with the student's config) the exported
    student do, and each in place of the other is refused with a hint."""
    from mmengine.config import Config

    import projects.manifold_kd  # noqa: F401 (registers the distiller)
    from projects.common.checkpoint_fit import checkpoint_fit
    from projects.common.distill import build_model, student_checkpoint
    student = build_model(CLS)
    assert checkpoint_fit(student, torch.load(model_checkpoint(CLS))).fits
    cfg = Config.fromfile(osp.join(ROOT,
                                   'configs/manifold_kd/toy_vit_manifold.py'))
    distiller = build_model(cfg)
    full = {'state_dict': distiller.state_dict()}
    fit = checkpoint_fit(distiller, full)
    assert fit.fits and fit.prefix == 'student.'
    assert fit.total == len(distiller.student.state_dict()) - sum(
        k.endswith('num_batches_tracked') for k in
        distiller.student.state_dict())
    exported = student_checkpoint(full)
    vit = build_model(osp.join(ROOT,
                               'configs/manifold_kd/toy_vit_student.py'))
    assert checkpoint_fit(vit, exported).fits
    # a student-only checkpoint with the distiller config, and vice versa
    fit = checkpoint_fit(distiller, exported)
    assert not fit.fits and "the student's own config" in fit.hint
    fit = checkpoint_fit(vit, full)
    assert not fit.fits and 'distill_to_student.py' in fit.hint


def test_misspelt_top_level_key_warns(tool, tmp_path, capsys):
    from projects.common import runtime
    cfg = tmp_path / 'typo.py'
    cfg.write_text(f"_base_ = ['{CLS}']\n"
                   "modle = dict(head=dict(num_classes=3))\n"
                   "img_scale = (64, 64)\n")
    loaded = runtime.load_config(str(cfg))
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('warning: '), err
    assert '`modle`' in err and 'did you mean `model`?' in err, err
    assert loaded.model.head.num_classes == 10  # the run goes on unchanged
    # through a tool: the warning, then the run goes on (to an error here)
    res = tool([TEST, str(cfg), str(tmp_path / 'nope.pth')],
               cwd=str(tmp_path))
    _assert_clear_error(res, 'nope.pth', 'does not exist')
    assert res.stderr.startswith('warning: ') and '`modle`' in res.stderr


def _evil_checkpoint(path, func, args):
    """A checkpoint whose unpickling would call ``func(*args)``; nothing is
    called here: torch.save only records the call."""

    class Payload:
        def __reduce__(self):
            return func, args

    torch.save({'state_dict': {}, 'meta': Payload()}, path)


def test_checkpoint_that_runs_code(tool, tmp_path, toy_data):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    _evil_checkpoint(path, os.system, (f'touch {marker}',))
    res = tool([TEST, CLS, str(path), '--work-dir', str(tmp_path / 'w'),
                '--cfg-options', 'test_dataloader.dataset.indices=4'],
               cwd=str(tmp_path))
    _assert_clear_error(res, str(path), 'tries to run code',
                        f'a call to {os.system.__module__}.system',
                        'must not be')
    assert 'EVLAB_TRUSTED_CHECKPOINT_TYPES' not in res.stderr
    assert not marker.exists()


def test_checkpoint_with_foreign_type(tmp_path):
    # in-process: test_checkpoint_that_runs_code covers the tool's line
    from projects.common.checkpoint import CheckpointError, safe_load
    path = tmp_path / 'args.pth'
    torch.save({'state_dict': {}, 'args': argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError) as info:
        safe_load(path)
    message = str(info.value)
    for needle in (str(path), 'of type argparse.Namespace',
                   'export EVLAB_TRUSTED_CHECKPOINT_TYPES=argparse.Namespace'):
        assert needle in message, message


@pytest.mark.parametrize('func, args, name', [
    (eval, ('1',), 'builtins.eval'),
    (exec, ('1',), 'builtins.exec'),
    # protocol 2 saves it under its Python 2 name
    (subprocess.Popen, (['true'],), 'commands.Popen'),
    (shutil.rmtree, ('/nonexistent',), 'shutil.rmtree'),
    (importlib.import_module, ('os',), 'importlib.import_module'),
])
def test_safe_load_names_code_globals(tmp_path, func, args, name):
    from projects.common.checkpoint import CheckpointError, safe_load
    path = tmp_path / 'evil.pth'
    _evil_checkpoint(path, func, args)
    with pytest.raises(CheckpointError) as info:
        safe_load(path)
    message = str(info.value)
    assert f'a call to {name})' in message and 'must not be' in message
    assert 'EVLAB_TRUSTED' not in message


@pytest.mark.parametrize('message, name', [
    # every phrasing of torch/_weights_only_unpickler.py
    ('Trying to load unsupported GLOBAL posix.system whose module posix '
     'is blocked.', 'posix.system'),
    ('Unsupported global: GLOBAL eval was not an allowed global by '
     'default.', 'builtins.eval'),
    ('Unsupported global: GLOBAL argparse.Namespace was not an allowed '
     'global by default.', 'argparse.Namespace'),
    ('Can only create new object for nn.Parameter or classes allowlisted '
     "via `add_safe_globals` but got <class 'argparse.Namespace'>",
     'argparse.Namespace'),
    ('Can only build Tensor, Parameter, OrderedDict or types allowlisted '
     "via `add_safe_globals`, but got <class 'collections.deque'>",
     'collections.deque'),
    ('Trying to call reduce for unrecognized function <built-in function '
     "system> which belongs to <module 'posix' (built-in)>", 'posix.system'),
    ("Unsupported global: GLOBAL builtins.getattr (on <class 'x'>, 'y')",
     'builtins.getattr'),
])
def test_refused_global_in_every_phrasing(message, name):
    from projects.common.checkpoint import _refused_global
    wrapped = ('Weights only load failed. ... WeightsUnpickler error: '
               f'{message}\n\nCheck the documentation of torch.load')
    assert _refused_global(wrapped) == name


def test_safe_load_refusal_without_a_type(tmp_path):
    from projects.common.checkpoint import CheckpointError, safe_load
    path = tmp_path / 'p4.pth'
    # protocol 4 refers to globals by STACK_GLOBAL, which the weights-only
    # loader does not read
    torch.save({'state_dict': {'w': torch.ones(2)}}, path, pickle_protocol=4)
    with pytest.warns(UserWarning), pytest.raises(CheckpointError) as info:
        safe_load(path)
    message = str(info.value)
    assert str(path) in message and 'Unsupported operand' in message
    assert 'EVLAB_TRUSTED' not in message


@pytest.mark.parametrize('name', ['os.system', 'subprocess.Popen',
                                  'builtins.eval'])
def test_trusting_a_code_global_is_refused(tmp_path, monkeypatch, name):
    """EVLAB_TRUSTED_CHECKPOINT_TYPES never lets a code-running global in,
    even when the user sets it."""
    from projects.common.checkpoint import TRUST_ENV, safe_load
    from projects.common.errors import EVLabError
    path = tmp_path / 'w.pth'
    torch.save({'state_dict': {}}, path)
    monkeypatch.setenv(TRUST_ENV, f'argparse.Namespace,{name}')
    with pytest.raises(EVLabError, match=f'{name}.*can run code'):
        safe_load(path)
    monkeypatch.setenv(TRUST_ENV, 'argparse.Namespace')
    assert safe_load(path) == {'state_dict': {}}
