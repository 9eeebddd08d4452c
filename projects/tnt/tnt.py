# Copyright (c) EVLab contributors.
"""TNT: Transformer in Transformer (NeurIPS 2021).

Paper: https://arxiv.org/abs/2103.00112
Official code: https://github.com/huawei-noah/Efficient-AI-Backbones
(``tnt_pytorch``); timm >= 1.0.16 ``tnt_s_patch16_224`` /
``tnt_b_patch16_224`` follow it.

Two structures are implemented (``structure='official' | 'legacy'``); they
differ only in the word embedding and the word -> sentence fusion of every
block, and their weights are not interchangeable:

- ``official``: the 7x7 / 4 conv runs on every 16x16 patch separately
  (zero padding at each patch border); fusion is
  ``LN_d(Linear_{16c->d, no bias}(LN_{16c}(vec(Y))))``.
- ``legacy`` (timm's ``tnt_s_legacy_patch16_224``, mmpretrain's ``TNT``):
  the conv runs on the whole image, then 4x4 windows are cut; fusion is
  ``Linear_{16c->d, bias}(vec(LN_c(Y)))``.

Parameter names follow timm's current ones, so timm state dicts load after
adding the ``backbone.`` prefix; :func:`convert_official`,
:func:`convert_timm` and :func:`convert_mmpretrain` map foreign checkpoints
onto an mmpretrain ``ImageClassifier`` with this backbone and a
``LinearClsHead``.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS

ConfigType = dict

#: Word width c / heads, sentence width d / heads, depth (paper Table 1).
#: TNT-Ti is not in the official release; 12 / 2 follows the paper's
#: table as read in the spec (c / h_in marked uncertain there).
ARCH_SETTINGS = {
    'ti': dict(inner_dims=12, inner_heads=2, embed_dims=192, num_heads=3,
               depth=12),
    's': dict(inner_dims=24, inner_heads=4, embed_dims=384, num_heads=6,
              depth=12),
    'b': dict(inner_dims=40, inner_heads=4, embed_dims=640, num_heads=10,
              depth=12),
}
ARCH_ALIASES = {'tiny': 'ti', 'small': 's', 'base': 'b'}
STRUCTURES = ('official', 'legacy')


def _norm(norm_cfg: ConfigType, dims: int) -> nn.Module:
    return build_norm_layer(norm_cfg, dims)[1]


class Attention(nn.Module):
    """Multi-head self-attention with the official ``qk`` / ``v`` split.

    ``qk = Linear(C, 2C)`` holds q (first half) and k (second half), ``v =
    Linear(C, C)``; softmax over keys with scale ``head_dim ** -0.5``.

    Args:
        dims (int): Token width ``C``.
        num_heads (int): Heads; must divide ``dims``.
        qkv_bias (bool): Bias on ``qk`` and ``v``. Defaults to False.
        attn_drop (float): Dropout on the attention map. Defaults to 0.
        proj_drop (float): Dropout after ``proj``. Defaults to 0.
        fused (bool): Use ``F.scaled_dot_product_attention`` (same result,
            less memory). Counters that do not know that op (e.g.
            ``mmengine.analysis``) need ``fused=False``. Defaults to True.
    """

    def __init__(self,
                 dims: int,
                 num_heads: int,
                 qkv_bias: bool = False,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 fused: bool = True) -> None:
        super().__init__()
        if dims % num_heads:
            raise ValueError(f'num_heads ({num_heads}) must divide the '
                             f'width ({dims})')
        self.num_heads = num_heads
        self.head_dims = dims // num_heads
        self.scale = self.head_dims**-0.5
        self.fused = fused
        self.qk = nn.Linear(dims, dims * 2, bias=qkv_bias)
        self.v = nn.Linear(dims, dims, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dims, dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        # (B, N, 2C) -> (2, B, heads, N, head_dims)
        qk = self.qk(x).reshape(B, N, 2, self.num_heads,
                                self.head_dims).permute(2, 0, 3, 1, 4)
        q, k = qk.unbind(0)
        v = self.v(x).reshape(B, N, self.num_heads,
                              self.head_dims).transpose(1, 2)
        if self.fused:
            x = F.scaled_dot_product_attention(
                q, k, v,
                dropout_p=self.attn_drop.p if self.training else 0.)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale
            x = self.attn_drop(attn.softmax(dim=-1)) @ v
        # (B, heads, N, head_dims) -> (B, N, C)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """``fc1`` -> GELU -> dropout -> ``fc2`` -> dropout."""

    def __init__(self, dims: int, hidden_dims: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SqueezeExcite(nn.Module):
    """Official optional SE on the outer MLP output (``se > 0``, unused in
    the released models): a gate ``Tanh(fc(LN(mean over tokens)))`` with a
    bottleneck of ``dims // 4``; names ``se_layer.fc.{0,1,3}`` as in the
    official code."""

    def __init__(self, dims: int, norm_cfg: ConfigType) -> None:
        super().__init__()
        hidden = int(dims * 0.25)
        self.fc = nn.Sequential(
            _norm(norm_cfg, dims), nn.Linear(dims, hidden),
            nn.ReLU(inplace=True), nn.Linear(hidden, dims), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=1, keepdim=True))


class PixelEmbed(nn.Module):
    """Image -> visual words: (B, 3, H, W) -> (B * n, c, w, w), w = 4.

    ``official``: cut 16x16 patches, then ``Conv2d(3, c, 7, 4, 3)`` on each
    (padding at every patch border). ``legacy``: the conv on the whole
    image, then cut ``w x w`` windows.

    Args:
        patch_size (int): Sentence (patch) size ``p``.
        in_channels (int): Image channels.
        inner_dims (int): Word width ``c``.
        inner_stride (int): Conv stride; ``w = ceil(p / inner_stride)``.
        legacy (bool): Legacy structure.
    """

    def __init__(self, patch_size: int, in_channels: int, inner_dims: int,
                 inner_stride: int, legacy: bool) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.legacy = legacy
        self.words_size = math.ceil(patch_size / inner_stride)
        if legacy and patch_size % inner_stride:
            raise ValueError('the legacy structure needs inner_stride to '
                             f'divide patch_size, got {inner_stride} and '
                             f'{patch_size}')
        self.proj = nn.Conv2d(in_channels, inner_dims, kernel_size=7,
                              stride=inner_stride, padding=3)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int,
                                                                    int]]:
        B, C, H, W = x.shape
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f'input size ({H}, {W}) must be a multiple of '
                             f'the patch size {p}')
        gh, gw = H // p, W // p
        if self.legacy:
            x = self.proj(x)
            w = self.words_size
            # (B, c, gh*w, gw*w) -> (B*gh*gw, c, w, w), row-major patches
            c = x.shape[1]
            x = x.reshape(B, c, gh, w, gw, w).permute(0, 2, 4, 1, 3, 5)
            x = x.reshape(B * gh * gw, c, w, w)
        else:
            # (B, C, gh*p, gw*p) -> (B*gh*gw, C, p, p) -> conv -> (.., c, w, w)
            x = x.reshape(B, C, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5)
            x = self.proj(x.reshape(B * gh * gw, C, p, p))
        return x, (gh, gw)


class TNTBlock(BaseModule):
    """One TNT block: inner transformer on the words of every patch, fusion
    of the words into their sentence (cls token untouched), outer
    transformer on the sentences (paper Eq. 2-5).

    Args:
        inner_dims (int): Word width ``c``.
        embed_dims (int): Sentence width ``d``.
        num_words (int): Words per sentence ``m`` (16).
        inner_heads (int): Inner heads.
        num_heads (int): Outer heads.
        mlp_ratio (float): Hidden ratio of both MLPs. Defaults to 4.
        qkv_bias (bool): Bias on q, k, v. Defaults to False.
        drop_rate (float): Dropout after attention and MLP projections.
            Defaults to 0.
        attn_drop_rate (float): Dropout on attention maps. Defaults to 0.
        drop_path_rate (float): Drop path on the four residual branches
            (not on the fusion). Defaults to 0.
        legacy (bool): Legacy fusion. Defaults to False.
        se (bool): The official optional SE on the outer MLP.
            Defaults to False.
        fused_attn (bool): See :class:`Attention`. Defaults to True.
        norm_cfg (dict, optional): Norm layer. Defaults to
            ``dict(type='LN', eps=1e-5)``.
        init_cfg (dict, optional): Initialisation. Defaults to None.
    """

    def __init__(self,
                 inner_dims: int,
                 embed_dims: int,
                 num_words: int,
                 inner_heads: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = False,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 legacy: bool = False,
                 se: bool = False,
                 fused_attn: bool = True,
                 norm_cfg: Optional[ConfigType] = None,
                 init_cfg: Optional[ConfigType] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='LN', eps=1e-5)
        attn = dict(qkv_bias=qkv_bias, attn_drop=attn_drop_rate,
                    proj_drop=drop_rate, fused=fused_attn)
        # inner transformer (words)
        self.norm_in = _norm(norm_cfg, inner_dims)
        self.attn_in = Attention(inner_dims, inner_heads, **attn)
        self.norm_mlp_in = _norm(norm_cfg, inner_dims)
        self.mlp_in = Mlp(inner_dims, int(inner_dims * mlp_ratio), drop_rate)
        # fusion words -> sentence
        self.legacy = legacy
        if legacy:
            self.norm1_proj = _norm(norm_cfg, inner_dims)
            self.proj = nn.Linear(num_words * inner_dims, embed_dims)
            self.norm2_proj = None
        else:
            self.norm1_proj = _norm(norm_cfg, num_words * inner_dims)
            self.proj = nn.Linear(num_words * inner_dims, embed_dims,
                                  bias=False)
            self.norm2_proj = _norm(norm_cfg, embed_dims)
        # outer transformer (sentences)
        self.norm_out = _norm(norm_cfg, embed_dims)
        self.attn_out = Attention(embed_dims, num_heads, **attn)
        self.norm_mlp = _norm(norm_cfg, embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate)
        self.se_layer = SqueezeExcite(embed_dims, norm_cfg) if se else None
        self.drop_path = DropPath(drop_path_rate) \
            if drop_path_rate > 0. else nn.Identity()

    def forward(self, pixel_embed: torch.Tensor, patch_embed: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``pixel_embed``: (B*n, m, c); ``patch_embed``: (B, n+1, d)."""
        # Eq. 2-3: inner transformer, weights shared by all patches
        pixel_embed = pixel_embed + self.drop_path(
            self.attn_in(self.norm_in(pixel_embed)))
        pixel_embed = pixel_embed + self.drop_path(
            self.mlp_in(self.norm_mlp_in(pixel_embed)))
        # Eq. 4: Z[:, 1:] += FC(vec(Y)); (B*n, m, c) -> (B, n, m*c)
        B, N, _ = patch_embed.shape
        if self.legacy:
            words = self.norm1_proj(pixel_embed).reshape(B, N - 1, -1)
            fused = self.proj(words)
        else:
            words = pixel_embed.reshape(B, N - 1, -1)
            fused = self.norm2_proj(self.proj(self.norm1_proj(words)))
        # not in place (the official code is): autograd-safe, same values
        patch_embed = torch.cat(
            [patch_embed[:, :1], patch_embed[:, 1:] + fused], dim=1)
        # Eq. 5: outer transformer
        patch_embed = patch_embed + self.drop_path(
            self.attn_out(self.norm_out(patch_embed)))
        y = self.mlp(self.norm_mlp(patch_embed))
        if self.se_layer is not None:
            y = y + self.se_layer(y)
        patch_embed = patch_embed + self.drop_path(y)
        return pixel_embed, patch_embed


@MODELS.register_module()
class TransformerInTransformer(BaseBackbone):
    """TNT backbone (paper Sec. 3, Table 1), official or legacy structure.

    The word embedding (``pixel_embed`` + ``pixel_pos``) gives every patch
    16 words of width ``c``; the stem projection ``norm2_proj(proj(
    norm1_proj(vec(words))))`` gives the sentence embedding, to which the
    cls token and ``patch_pos`` are added; ``depth`` :class:`TNTBlock`
    follow, and the final ``norm``. Registered under a name of ours
    (mmpretrain already has ``TNT``, a legacy-structure model).

    Args:
        arch (str | dict): ``'ti'``, ``'s'``, ``'b'`` (or ``'tiny'``,
            ``'small'``, ``'base'``) or a dict with keys ``inner_dims``,
            ``inner_heads``, ``embed_dims``, ``num_heads``, ``depth``.
            Defaults to ``'s'``.
        img_size (int | tuple): Size the position embeddings are made for;
            other multiples of ``patch_size`` are served by interpolating
            ``patch_pos`` (``interpolate_mode``). Defaults to 224.
        patch_size (int): Sentence patch size. Defaults to 16.
        inner_stride (int): Stride of the word conv (4 gives 4x4 words).
            Defaults to 4.
        in_channels (int): Image channels. Defaults to 3.
        structure (str): ``'official'`` or ``'legacy'`` (see the module
            docstring). Defaults to ``'official'``.
        mlp_ratio (float): Hidden ratio of the inner and outer MLPs.
            Defaults to 4.
        qkv_bias (bool): Bias on q, k, v. Defaults to False.
        drop_rate (float): Dropout after the position embedding and in the
            blocks. Defaults to 0.
        attn_drop_rate (float): Dropout on attention maps. Defaults to 0.
        drop_path_rate (float): Largest drop-path rate; block ``l`` gets
            ``l / (depth - 1)`` of it. Defaults to 0.
        out_type (str): ``'cls_token'`` (B, d), ``'featmap'`` (B, d, H/p,
            W/p) from the patch tokens, ``'avg_featmap'`` (B, d), the mean
            of the patch tokens, or ``'raw'`` (B, n+1, d).
            Defaults to ``'cls_token'``.
        out_indices (int | Sequence[int]): Blocks whose outputs are
            returned; negative values count from the end. Defaults to -1.
        final_norm (bool): Apply ``norm`` after the last block (to its
            output only). Defaults to True.
        frozen_stages (int): ``0`` freezes the embeddings, ``k > 0`` also
            blocks ``0 .. k-1`` (and ``norm`` when ``k == depth``); -1
            freezes nothing. Defaults to -1.
        se (bool): The official optional SE module. Defaults to False.
        fused_attn (bool): Use ``scaled_dot_product_attention`` (see
            :class:`Attention`). Defaults to True.
        interpolate_mode (str): Mode for resizing ``patch_pos``.
            Defaults to ``'bicubic'``.
        norm_cfg (dict, optional): Norm layer. Defaults to
            ``dict(type='LN', eps=1e-5)`` (the official eps, not DeiT's).
        init_cfg (dict | list, optional): Initialisation. Defaults to
            truncated-normal (std 0.02) Linear weights with zero bias and
            unit LayerNorms, as the official code.
    """
    OUT_TYPES = ('raw', 'cls_token', 'featmap', 'avg_featmap')

    def __init__(self,
                 arch: Union[str, ConfigType] = 's',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 inner_stride: int = 4,
                 in_channels: int = 3,
                 structure: str = 'official',
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = False,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 out_type: str = 'cls_token',
                 out_indices: Union[int, Sequence[int]] = -1,
                 final_norm: bool = True,
                 frozen_stages: int = -1,
                 se: bool = False,
                 fused_attn: bool = True,
                 interpolate_mode: str = 'bicubic',
                 norm_cfg: Optional[ConfigType] = None,
                 init_cfg: Optional[Union[ConfigType, List]] = None) -> None:
        if init_cfg is None:
            init_cfg = [
                dict(type='TruncNormal', layer='Linear', std=.02, bias=0.),
                dict(type='Constant', layer='LayerNorm', val=1., bias=0.)
            ]
        super().__init__(init_cfg=init_cfg)
        norm_cfg = norm_cfg or dict(type='LN', eps=1e-5)
        if isinstance(arch, str):
            key = ARCH_ALIASES.get(arch.lower(), arch.lower())
            if key not in ARCH_SETTINGS:
                raise ValueError(f'arch must be one of '
                                 f'{sorted(ARCH_SETTINGS)} or a dict, '
                                 f'got {arch!r}')
            settings = ARCH_SETTINGS[key]
        else:
            keys = set(ARCH_SETTINGS['s'])
            if not isinstance(arch, dict) or set(arch) != keys:
                raise ValueError(f'a custom arch needs exactly the keys '
                                 f'{sorted(keys)}, got {arch}')
            settings = dict(arch)
        if structure not in STRUCTURES:
            raise ValueError(f'structure must be one of {STRUCTURES}, got '
                             f'{structure!r}')
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'out_type must be one of {self.OUT_TYPES}, '
                             f'got {out_type!r}')
        self.arch_settings = settings
        self.inner_dims = settings['inner_dims']
        self.embed_dims = settings['embed_dims']
        self.depth = depth = settings['depth']
        self.structure = structure
        self.out_type = out_type
        self.final_norm = final_norm
        self.interpolate_mode = interpolate_mode
        self.patch_size = patch_size

        if isinstance(out_indices, int):
            out_indices = [out_indices]
        out_indices = list(out_indices)
        for i in out_indices:
            if not -depth <= i < depth:
                raise ValueError(f'out_indices entries must be in '
                                 f'[-{depth}, {depth}), got {i}')
        self.out_indices = sorted(i % depth for i in out_indices)
        if not -1 <= frozen_stages <= depth:
            raise ValueError(f'frozen_stages must be in [-1, {depth}], got '
                             f'{frozen_stages}')
        self.frozen_stages = frozen_stages

        if isinstance(img_size, int):
            img_size = (img_size, img_size)
        self.img_size = tuple(img_size)
        if img_size[0] % patch_size or img_size[1] % patch_size:
            raise ValueError(f'img_size {img_size} must be a multiple of '
                             f'patch_size {patch_size}')
        self.patch_resolution = (img_size[0] // patch_size,
                                 img_size[1] // patch_size)
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]

        c, d = self.inner_dims, self.embed_dims
        self.pixel_embed = PixelEmbed(patch_size, in_channels, c,
                                      inner_stride, structure == 'legacy')
        w = self.pixel_embed.words_size
        num_words = w * w
        # stem projection, the same in both structures
        self.norm1_proj = _norm(norm_cfg, num_words * c)
        self.proj = nn.Linear(num_words * c, d)
        self.norm2_proj = _norm(norm_cfg, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.patch_pos = nn.Parameter(torch.zeros(1, num_patches + 1, d))
        self.pixel_pos = nn.Parameter(torch.zeros(1, c, w, w))
        self.pos_drop = nn.Dropout(drop_rate)
        for p in (self.cls_token, self.patch_pos, self.pixel_pos):
            trunc_normal_(p, std=.02)

        # stochastic depth decay rule: 0 .. drop_path_rate over the blocks
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList([
            TNTBlock(c, d, num_words, settings['inner_heads'],
                     settings['num_heads'], mlp_ratio=mlp_ratio,
                     qkv_bias=qkv_bias, drop_rate=drop_rate,
                     attn_drop_rate=attn_drop_rate, drop_path_rate=dpr[i],
                     legacy=structure == 'legacy', se=se,
                     fused_attn=fused_attn, norm_cfg=norm_cfg)
            for i in range(depth)
        ])
        self.norm = _norm(norm_cfg, d) if final_norm else nn.Identity()
        self._register_load_state_dict_pre_hook(self._resize_patch_pos)
        self._freeze_stages()

    def init_weights(self) -> None:
        super().init_weights()
        pretrained = isinstance(self.init_cfg, dict) and \
            self.init_cfg.get('type') == 'Pretrained'
        if not pretrained:
            for p in (self.cls_token, self.patch_pos, self.pixel_pos):
                trunc_normal_(p, std=.02)

    def _resize_patch_pos(self, state_dict: Dict[str, torch.Tensor],
                          prefix: str, *args, **kwargs) -> None:
        """Resize a checkpoint's ``patch_pos`` made for another input
        size (square grids) to this model's ``img_size``."""
        key = prefix + 'patch_pos'
        if key not in state_dict:
            return
        src = state_dict[key]
        if src.shape == self.patch_pos.shape:
            return
        side = math.isqrt(src.shape[1] - 1)
        if side * side != src.shape[1] - 1:
            raise ValueError(f'cannot resize a non-square {key} of shape '
                             f'{tuple(src.shape)}')
        state_dict[key] = resize_pos_embed(src, (side, side),
                                           self.patch_resolution,
                                           self.interpolate_mode, 1)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = [self.pixel_embed, self.norm1_proj, self.proj,
                   self.norm2_proj, self.pos_drop]
        modules += list(self.blocks[:self.frozen_stages])
        if self.frozen_stages == self.depth:
            modules.append(self.norm)
        for p in (self.cls_token, self.patch_pos, self.pixel_pos):
            p.requires_grad = False
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'TransformerInTransformer':
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        B = x.shape[0]
        words, hw = self.pixel_embed(x)
        # (B*n, c, w, w) + pixel_pos -> (B*n, m, c)
        words = (words + self.pixel_pos).flatten(2).transpose(1, 2)
        n = hw[0] * hw[1]
        patch = self.norm2_proj(self.proj(self.norm1_proj(
            words.reshape(B, n, -1))))
        patch = torch.cat([self.cls_token.expand(B, -1, -1), patch], dim=1)
        patch_pos = resize_pos_embed(self.patch_pos, self.patch_resolution,
                                     hw, self.interpolate_mode, 1)
        patch = self.pos_drop(patch + patch_pos)

        outs = []
        for i, block in enumerate(self.blocks):
            words, patch = block(words, patch)
            if i == self.depth - 1:
                patch = self.norm(patch)
            if i in self.out_indices:
                outs.append(self._format_output(patch, hw))
        return tuple(outs)

    def analytic_macs(self, input_size: Tuple[int, int]) -> int:
        """Multiply-accumulates of one image of ``input_size`` (H, W) in
        closed form (convolutions and matrix products; norms, softmax and
        element-wise ops excluded, as in ``docs/model_zoo.md``).

        With n = (H/p)(W/p) sentences of m = w^2 words, word width c,
        sentence width d and MLP ratio r, a block costs

        - inner: n [4 m c^2 (qk, v, proj) + 2 m^2 c (q k^T, attn v)
          + 2 r m c^2 (MLP)], then n m c d for the word -> sentence FC;
        - outer, on n + 1 tokens: 4 (n+1) d^2 + 2 (n+1)^2 d + 2 r (n+1) d^2
          (+ 2 d^2 / 4 for the optional SE gate on the token mean);

        plus the stem: the 7x7 word conv (official structure: on each
        p x p patch, w x w outputs; legacy: on the whole image) and the
        n m c d projection. ``get_flops.py`` prints this beside the count.
        """
        h, w_img = input_size
        p, c, d = self.patch_size, self.inner_dims, self.embed_dims
        w = self.pixel_embed.words_size
        m, n = w * w, (h // p) * (w_img // p)
        conv = self.pixel_embed.proj
        k = conv.kernel_size[0] * conv.kernel_size[1] * conv.in_channels
        if self.structure == 'legacy':
            s = conv.stride[0]
            words = -(-h // s) * -(-w_img // s)  # ceil: padding 3, stride s
        else:
            words = n * m
        block = self.blocks[0]
        r_in = block.mlp_in.fc1.out_features / c
        r_out = block.mlp.fc1.out_features / d
        inner = n * (4 * m * c * c + 2 * m * m * c + 2 * r_in * m * c * c)
        outer = 4 * (n + 1) * d * d + 2 * (n + 1)**2 * d + \
            2 * r_out * (n + 1) * d * d
        if block.se_layer is not None:
            hidden = block.se_layer.fc[1].out_features
            outer += 2 * d * hidden
        per_block = inner + n * m * c * d + outer
        stem = words * c * k + n * m * c * d
        return int(round(stem + self.depth * per_block))

    def _format_output(self, x: torch.Tensor,
                       hw: Tuple[int, int]) -> torch.Tensor:
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        tokens = x[:, 1:]
        if self.out_type == 'avg_featmap':
            return tokens.mean(dim=1)
        # (B, n, d) -> (B, d, H/p, W/p)
        return tokens.reshape(x.shape[0], *hw, -1).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------
# foreign checkpoints -> mmpretrain ImageClassifier(backbone=ours,
# head=LinearClsHead)
# --------------------------------------------------------------------------

#: official Efficient-AI-Backbones names -> ours (= timm's current names)
OFFICIAL_RENAMES = (
    ('patch_embed.', 'pixel_embed.'),
    ('proj_norm1', 'norm1_proj'),
    ('proj_norm2', 'norm2_proj'),
    ('inner_norm1', 'norm_in'),
    ('inner_attn', 'attn_in'),
    ('inner_norm2', 'norm_mlp_in'),
    ('inner_mlp', 'mlp_in'),
    ('outer_norm1', 'norm_out'),
    ('outer_attn', 'attn_out'),
    ('outer_norm2', 'norm_mlp'),
    ('outer_mlp', 'mlp'),
)


def _strip_module(state_dict: Dict[str, torch.Tensor]
                  ) -> Dict[str, torch.Tensor]:
    return {(k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in state_dict.items()}


def _to_classifier(state_dict: Dict[str, torch.Tensor]
                   ) -> Dict[str, torch.Tensor]:
    """timm-style names -> ``backbone.*`` and ``head.fc.*``."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith('head.'):
            out['head.fc.' + key[len('head.'):]] = value
        else:
            out['backbone.' + key] = value
    return out


def convert_timm(state_dict: Dict[str, torch.Tensor]
                 ) -> Dict[str, torch.Tensor]:
    """A timm (>= 1.0.16) TNT state dict, either structure, -> ours.

    Names are already ours; only the ``backbone.`` / ``head.fc.`` prefixes
    are added. A pre-1.0.16 timm checkpoint is a legacy-structure one and
    converts the same way (build the model with ``structure='legacy'``).
    """
    return _to_classifier(_strip_module(state_dict))


def convert_official(state_dict: Dict[str, torch.Tensor]
                     ) -> Dict[str, torch.Tensor]:
    """An Efficient-AI-Backbones ``tnt_pytorch`` checkpoint -> ours
    (official structure).

    Renames (:data:`OFFICIAL_RENAMES`), ``outer_pos -> patch_pos``,
    ``inner_pos`` (1, m, c) -> ``pixel_pos`` (1, c, w, w) and drops the
    unused frozen ``outer_tokens``.
    """
    out = {}
    for key, value in _strip_module(state_dict).items():
        if key == 'outer_tokens':
            continue
        if key == 'outer_pos':
            key = 'patch_pos'
        elif key == 'inner_pos':
            _, m, c = value.shape
            w = math.isqrt(m)
            # (1, m, c) -> (1, c, m) -> (1, c, w, w); the word index is
            # row-major over the w x w grid, as the flatten in forward
            value = value.permute(0, 2, 1).reshape(1, c, w, w)
            key = 'pixel_pos'
        else:
            for old, new in OFFICIAL_RENAMES:
                key = key.replace(old, new)
        out[key] = value
    return _to_classifier(out)


def convert_mmpretrain(state_dict: Dict[str, torch.Tensor]
                       ) -> Dict[str, torch.Tensor]:
    """An mmpretrain ``TNT`` classifier state dict (legacy structure) ->
    ours with ``structure='legacy'``.

    ``in_proj_weight`` (3C, C) = [q; k; v] is split into ``qk`` (rows
    0:2C) and ``v`` (rows 2C:3C), with the biases alike when present;
    ``out_proj`` -> ``proj``; FFN ``layers.0.0`` / ``layers.1`` ->
    ``fc1`` / ``fc2``; ``layers.i.{inner_block, norm_proj, projection,
    outer_block}`` -> ``blocks.i.*``; the stem ``projection`` -> ``proj``.
    """
    blocks = {'inner_block': ('norm_in', 'attn_in', 'norm_mlp_in',
                              'mlp_in'),
              'outer_block': ('norm_out', 'attn_out', 'norm_mlp', 'mlp')}
    out = {}
    for key, value in _strip_module(state_dict).items():
        if not key.startswith('backbone.'):
            out[key] = value  # head.fc.*
            continue
        key = key[len('backbone.'):]
        if key.startswith('projection.'):
            out['backbone.proj.' + key.split('.', 1)[1]] = value
            continue
        if not key.startswith('layers.'):
            out['backbone.' + key] = value
            continue
        _, idx, part, rest = key.split('.', 3)
        prefix = f'backbone.blocks.{idx}.'
        if part == 'norm_proj':
            out[prefix + 'norm1_proj.' + rest] = value
        elif part == 'projection':
            out[prefix + 'proj.' + rest] = value
        else:
            norm, attn, norm_mlp, mlp = blocks[part]
            if rest.startswith('norm_attn.'):
                out[prefix + norm + rest[len('norm_attn'):]] = value
            elif rest.startswith('norm_ffn.'):
                out[prefix + norm_mlp + rest[len('norm_ffn'):]] = value
            elif rest.startswith('attn.attn.in_proj_'):
                kind = rest.rsplit('_', 1)[1]  # weight | bias
                dims = value.shape[0] // 3
                out[f'{prefix}{attn}.qk.{kind}'] = value[:2 * dims]
                out[f'{prefix}{attn}.v.{kind}'] = value[2 * dims:]
            elif rest.startswith('attn.attn.out_proj.'):
                out[f'{prefix}{attn}.proj.' + rest.rsplit('.', 1)[1]] = \
                    value
            elif rest.startswith('ffn.layers.0.0.'):
                out[f'{prefix}{mlp}.fc1.' + rest.rsplit('.', 1)[1]] = value
            elif rest.startswith('ffn.layers.1.'):
                out[f'{prefix}{mlp}.fc2.' + rest.rsplit('.', 1)[1]] = value
            else:
                raise KeyError(f'unexpected mmpretrain TNT key {key!r}')
    return out
