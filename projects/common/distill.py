# Copyright (c) EVLab contributors.
"""The distillation core shared by every EVLab distiller.

The design follows mmrazor and torchdistill (neither is a dependency):

- the teacher is a frozen submodule of the distiller, built from a config
  (``'mmdet::retinanet/retinanet_r101_fpn_2x_coco.py'``, a file path or an
  inline model dict) and loaded from its checkpoint in ``init_weights``,
  i.e. by the Runner and never while a config is merely built;
- features of either model are addressed by module path (``'neck'``,
  ``'backbone.layers.3'``) and recorded with forward hooks, so model code
  stays untouched (:class:`FeatureRecorder`);
- the distiller wraps the host model: ``predict`` and ``tensor`` modes are
  the student's, so metrics, visualisation and export work unchanged, and
  ``tools/model_converters/distill_to_student.py`` strips everything but
  ``student.*`` for release.

Nothing here imports a host library: models are built through mmengine's
root registry under the right ``default_scope``, which dispatches to mmdet,
mmpretrain or mmseg.
"""
import copy
import os.path as osp
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import MODELS, DefaultScope

from .errors import EVLabError

ModelSpec = Union[str, dict, ConfigDict, Config]


class DistillError(EVLabError):
    """A distiller's teacher, checkpoint or feature path is wrong."""


def load_model_config(spec: ModelSpec) -> tuple:
    """Resolve ``spec`` to ``(model_cfg, scope)``.

    Args:
        spec: a config path, possibly with a package prefix
            (``'mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'``),
            a full config (with a ``model`` key), or a model dict.
            A dict of the form ``dict(cfg_path=..., **overrides)`` loads the
            file and merges ``overrides`` into its ``model``. A config's
            top-level ``data_preprocessor`` (mmpretrain, mmseg) goes into
            a model that has none, as the Runner does.

    Returns:
        tuple: the model config (a ``ConfigDict``) and the config's
        ``default_scope`` (None when ``spec`` is a bare model dict).
    """
    overrides = {}
    if isinstance(spec, (dict, ConfigDict)) and 'cfg_path' in spec:
        overrides = {k: v for k, v in spec.items() if k != 'cfg_path'}
        spec = spec['cfg_path']
    if isinstance(spec, str):
        try:
            if '::' in spec:
                from mmengine.hub import get_config
                cfg = get_config(spec)
            else:
                cfg = Config.fromfile(osp.expanduser(spec))
        except FileNotFoundError as e:
            raise DistillError(f'teacher config {spec!r} not found ({e})'
                               ) from None
        if 'model' not in cfg:
            raise DistillError(f'config {spec!r} has no `model` key')
        model_cfg = cfg.model
        scope = cfg.get('default_scope')
        if cfg.get('data_preprocessor') is not None and \
                model_cfg.get('data_preprocessor') is None:
            # what the Runner does for mmpretrain/mmseg-style configs
            model_cfg = ConfigDict(model_cfg,
                                   data_preprocessor=cfg.data_preprocessor)
    elif isinstance(spec, Config) or (isinstance(spec, (dict, ConfigDict))
                                      and 'model' in spec):
        model_cfg, scope = spec['model'], spec.get('default_scope')
    elif isinstance(spec, (dict, ConfigDict)) and 'type' in spec:
        model_cfg, scope = spec, None
    else:
        raise DistillError(
            f'cannot build a model from {spec!r}: give a config path '
            f'(optionally `mmdet::`/`mmpretrain::`-prefixed), a config with '
            f'a `model` key, or a model dict with a `type` key')
    model_cfg = ConfigDict(copy.deepcopy(dict(model_cfg)))
    if overrides:  # nested dicts merge, other values replace
        merged = Config(dict(model=model_cfg))
        merged.merge_from_dict(dict(model=copy.deepcopy(overrides)))
        model_cfg = merged.model
    return model_cfg, scope


def build_model(spec: ModelSpec) -> nn.Module:
    """Build a model from ``spec`` (see :func:`load_model_config`) in its
    own config's scope, or in the current default scope."""
    model_cfg, scope = load_model_config(spec)
    if scope is None:
        return MODELS.build(model_cfg)
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(model_cfg)


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients into ``module`` and put it in eval mode."""
    module.requires_grad_(False)
    module.eval()
    return module


def load_weights(model: nn.Module, checkpoint: str,
                 strict: bool = True, what: str = 'teacher',
                 student_of_distiller: bool = False) -> None:
    """Load ``checkpoint`` (a local path or URL) into ``model``.

    Local files go through EVLab's safe (weights-only) loader. Weights are
    read from ``state_dict`` or, for DeiT/timm training-script files, from
    ``model``; a DDP ``module.`` prefix is removed. A distiller's
    checkpoint is an error, unless ``student_of_distiller``: then its
    ``student.*`` weights are loaded (the analysis tools deploy the
    student). With
    ``strict``, a key mismatch is an error naming the file and the keys:
    a half-loaded teacher would silently teach noise.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    from .checkpoint import install
    install()
    if '://' not in checkpoint:
        checkpoint = osp.expanduser(checkpoint)
        if not osp.isfile(checkpoint):
            raise DistillError(f'{what} checkpoint {checkpoint!r} does not '
                               f'exist')
    try:
        ckpt = CheckpointLoader.load_checkpoint(checkpoint,
                                                map_location='cpu')
    except OSError as e:  # urllib's URLError included: no network, 404
        if '://' not in checkpoint:
            raise
        reason = getattr(e, 'reason', None) or e
        raise DistillError(
            f'the {what} checkpoint could not be downloaded from '
            f'{checkpoint} ({reason}). Download it on a machine with '
            f'network access and pass the local file: --cfg-options '
            f'model.{what}_ckpt=PATH') from None
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if isinstance(state, dict) and 'state_dict' not in ckpt and isinstance(
            state.get('model'), dict):
        state = state['model']  # DeiT/timm training scripts' files
    if isinstance(state, dict) and state and all(
            k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}  # DDP
    if not isinstance(state, dict):
        raise DistillError(f'{what} checkpoint {checkpoint!r} holds no '
                           f'state_dict')
    if any(k.startswith('student.') for k in state) and not any(
            k.startswith('student.') for k in model.state_dict()):
        if student_of_distiller:
            state = student_checkpoint(dict(state_dict=state))['state_dict']
        else:
            raise DistillError(
                f'{what} checkpoint {checkpoint!r} is a distiller checkpoint; '
                f'export the model with tools/model_converters/'
                f'distill_to_student.py first')
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
        for k in state if k in own and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if strict and (missing or unexpected or mismatched):
        def few(keys):
            return f'{keys[:3]}{"..." if len(keys) > 3 else ""}'
        raise DistillError(
            f'{what} checkpoint {checkpoint!r} does not fit the {what} '
            f'model: {len(mismatched)} shape mismatches {few(mismatched)}, '
            f'missing keys {few(missing)}, unexpected keys '
            f'{few(unexpected)}')
    model.load_state_dict(
        {k: v for k, v in state.items()
         if k in own and tuple(v.shape) == tuple(own[k].shape)},
        strict=False)
    print_log(f'loaded {what} weights from {checkpoint}', logger='current')


def get_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at ``path``, with an error naming the known paths."""
    try:
        return model.get_submodule(path) if path else model
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n.count('.') < 2]
        raise DistillError(
            f'no module {path!r} in {type(model).__name__}; top-level paths '
            f'are {names[1:20]}') from None


class FeatureRecorder:
    """Record the outputs of submodules, addressed by module path.

    Example:
        >>> rec = FeatureRecorder(model, ['backbone.layer3', 'neck'])
        >>> with rec:
        ...     model(x)
        >>> rec['neck']        # the neck's output of that forward

    Hooks are registered on ``__enter__`` (or :meth:`attach`) and removed on
    ``__exit__``; outputs are cleared at every entry, so a stale feature of
    an earlier batch can never be read.
    """

    def __init__(self, model: nn.Module, paths: Sequence[str]):
        self.paths = list(paths)
        self.modules = {p: get_module(model, p) for p in self.paths}
        self.outputs: Dict[str, Any] = {}
        self._handles: List[Any] = []

    def _hook(self, path: str):
        def hook(module, args, output):
            self.outputs[path] = output
        return hook

    def attach(self) -> 'FeatureRecorder':
        self.detach()
        self.outputs = {}
        self._handles = [
            m.register_forward_hook(self._hook(p))
            for p, m in self.modules.items()
        ]
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> 'FeatureRecorder':
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def __getitem__(self, path: str) -> Any:
        if path not in self.outputs:
            raise DistillError(
                f'module {path!r} did not run in the recorded forward pass '
                f'(recorded: {sorted(self.outputs)})')
        return self.outputs[path]


@contextmanager
def recording(model: nn.Module, paths: Sequence[str]) -> Iterator[
        FeatureRecorder]:
    """``with recording(model, paths) as rec:`` for a one-off recorder."""
    rec = FeatureRecorder(model, paths)
    with rec:
        yield rec


_PREPROCESSOR_KEYS = ('mean', 'std', '_channel_conversion', 'pad_size_divisor',
                      'pad_value')


def check_same_preprocessing(student: nn.Module, teacher: nn.Module) -> None:
    """Both models must see the same tensor: compare their preprocessors
    (mean, std, BGR->RGB, padding)."""
    sp = getattr(student, 'data_preprocessor', None)
    tp = getattr(teacher, 'data_preprocessor', None)
    if sp is None or tp is None:
        return
    for key in _PREPROCESSOR_KEYS:
        a, b = getattr(sp, key, None), getattr(tp, key, None)
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            same = a.shape == b.shape and torch.allclose(a, b)
        else:
            same = a == b
        if not same:
            raise DistillError(
                f'teacher and student preprocess images differently '
                f'(data_preprocessor.{key.lstrip("_")}: student {a}, '
                f'teacher {b}); the teacher sees the student\'s tensor, so '
                f'make the teacher config\'s data_preprocessor match')


def _student_with_preprocessor(student: ModelSpec,
                               data_preprocessor: dict) -> ModelSpec:
    """Hand a distiller-level ``data_preprocessor`` to the student.

    mmpretrain and mmseg configs keep the preprocessor at the top level and
    the Runner passes it to the (outer) model, i.e. to the distiller. It
    becomes the student's when the student config has none; a different
    one inside ``student`` is an error (one preprocessor for both models).
    """
    model_cfg, scope = load_model_config(student)
    own = model_cfg.get('data_preprocessor')
    if own is None:
        model_cfg.data_preprocessor = copy.deepcopy(data_preprocessor)
    elif dict(own) != dict(data_preprocessor):
        raise DistillError(
            'a distiller uses its student\'s data_preprocessor; the one '
            'given to the distiller differs from the one inside `student`: '
            'set it in one place only')
    return dict(model=model_cfg, default_scope=scope) if scope else \
        model_cfg


class BaseDistiller(BaseModel):
    """A student trained with a frozen teacher.

    Subclasses implement :meth:`loss`. ``predict`` and ``tensor`` modes run
    the student (or the teacher with ``predict_with='teacher'``, a sanity
    check of the teacher's checkpoint), so a distiller evaluates exactly like
    its student.

    Args:
        student (dict): the student model config, usually ``_base_.model``.
        teacher (str | dict): the teacher, see :func:`load_model_config`.
        teacher_ckpt (str, optional): the teacher's checkpoint (path or
            URL), loaded by :meth:`init_weights`.
        allow_random_teacher (bool): allow ``teacher_ckpt=None`` (tests and
            smoke runs only). Defaults to False.
        predict_with (str): ``'student'`` or ``'teacher'``.
        init_cfg (dict, optional): for the distiller's own modules.
        data_preprocessor (dict, optional): the student's preprocessor when
            the student config has none (mmpretrain and mmseg Runners pass
            the config's top-level ``data_preprocessor`` here); it must not
            differ from one set inside ``student``.
    """

    def __init__(self,
                 student: dict,
                 teacher: ModelSpec,
                 teacher_ckpt: Optional[str] = None,
                 allow_random_teacher: bool = False,
                 predict_with: str = 'student',
                 init_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if data_preprocessor is not None:
            student = _student_with_preprocessor(student, data_preprocessor)
        if teacher_ckpt is None and not allow_random_teacher:
            raise DistillError(
                'the distiller has no `teacher_ckpt`: a random teacher '
                'teaches noise. Give the teacher\'s checkpoint, or set '
                '`allow_random_teacher=True` for a smoke test')
        if predict_with not in ('student', 'teacher'):
            raise DistillError(f'predict_with must be "student" or '
                               f'"teacher", got {predict_with!r}')
        self.student = build_model(student)
        self.teacher = freeze(build_model(teacher))
        self.teacher_ckpt = teacher_ckpt
        self.predict_with = predict_with
        # one preprocessor, the student's: the teacher sees the same tensor
        self.data_preprocessor = self.student.data_preprocessor
        check_same_preprocessing(self.student, self.teacher)

    # -- the frozen teacher -------------------------------------------------
    def train(self, mode: bool = True) -> 'BaseDistiller':
        super().train(mode)
        self.teacher.eval()  # BN statistics and dropout stay frozen
        return self

    def init_weights(self) -> None:
        """Load the teacher's checkpoint (never re-initialised), then
        initialise the student and the distiller's own modules.

        The teacher comes first so that a teacher checkpoint that cannot be
        read or downloaded fails the run at once; loading it draws no
        random numbers, so the student's initialisation is unchanged.
        """
        self.teacher._is_init = True
        if self.teacher_ckpt is not None:
            load_weights(self.teacher, self.teacher_ckpt, what='teacher')
        super().init_weights()

    # -- modes --------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, data_samples=None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            model = self.student if self.predict_with == 'student' \
                else self.teacher
            return model(inputs, data_samples, mode='predict')
        if mode == 'tensor':
            return self.student(inputs, data_samples, mode='tensor')
        raise DistillError(f'invalid mode {mode!r}: use "loss", "predict" '
                           f'or "tensor"')

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        raise NotImplementedError

    # -- export -------------------------------------------------------------
    def student_state_dict(self) -> Dict[str, torch.Tensor]:
        """The student's weights, as the plain host model names them."""
        return self.student.state_dict()


def soft_target_kd(student_logits: torch.Tensor,
                   teacher_logits: torch.Tensor,
                   tau: float = 1.0) -> torch.Tensor:
    """Hinton's soft-target loss ``T^2 KL(softmax(z_t/T) || softmax(z_s/T))``
    summed over classes and averaged over the batch, in float32 (outside
    autocast)."""
    import torch.nn.functional as F
    with torch.autocast(device_type=student_logits.device.type,
                        enabled=False):
        log_ps = F.log_softmax(student_logits.float() / tau, dim=1)
        log_pt = F.log_softmax(teacher_logits.float() / tau, dim=1)
        kl = F.kl_div(log_ps, log_pt, reduction='batchmean',
                      log_target=True)
    return tau * tau * kl


def student_checkpoint(checkpoint: dict, prefix: str = 'student.') -> dict:
    """A distiller checkpoint reduced to its student.

    Keeps ``state_dict`` entries under ``prefix`` (stripped) and ``meta``;
    drops the teacher, adapters, optimizer and scheduler states.
    """
    state = checkpoint.get('state_dict')
    if not isinstance(state, dict):
        raise DistillError('the checkpoint has no state_dict')
    student = {k[len(prefix):]: v for k, v in state.items()
               if k.startswith(prefix)}
    if not student:
        heads = sorted({k.split('.')[0] for k in state})
        raise DistillError(
            f'the checkpoint has no {prefix!r} weights (top-level keys: '
            f'{heads}); is it a distiller checkpoint?')
    out = {'state_dict': student}
    if 'meta' in checkpoint:
        out['meta'] = checkpoint['meta']
    return out
