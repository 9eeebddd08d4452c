# Copyright (c) EVLab contributors.
"""HourNAS networks, the space, the cost table and the sampler."""
import json
import random

import pytest
import torch
from mmengine.registry import init_default_scope

import projects.hournas  # noqa: F401
from projects.common.complexity import count_conv_linear_macs, count_params
from projects.common.nas import (
    HeldOutSplit,
    Mutator,
    SinglePathSamplerHook,
    build_cost_table,
    export_config,
    recalibrate_bn,
)
from projects.hournas.model import subnet_state_dict
from projects.hournas.space import (
    HOURNAS_F,
    OPS,
    chain,
    find_vital,
    genotype_list,
    resnet50_chain,
)


@pytest.fixture(autouse=True)
def scope():
    init_default_scope('mmpretrain')


def _classifier(backbone: dict, num_classes: int = 1000,
                in_channels: int = 1280):
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(
        type='ImageClassifier', backbone=backbone,
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='DropoutLinearClsHead', num_classes=num_classes,
                  in_channels=in_channels)))


def test_vital_blocks_of_the_hournas_space_and_resnet50():
    assert find_vital(chain('imagenet')) == [0, 1, 5, 9, 13, 17, 21]
    # ResNet-50: the first bottleneck of each stage (projection shortcut)
    assert find_vital(resnet50_chain()) == [0, 3, 7, 13]
    assert find_vital(chain('toy')) == [0, 2, 4]


def test_hournas_f_macs_and_params_match_the_paper():
    model = _classifier(dict(type='HourNASNet'))
    macs = count_conv_linear_macs(model, [torch.zeros(1, 3, 224, 224)])
    params = count_params(model)
    assert abs(macs / 382.9e6 - 1) < 0.005, macs
    assert abs(params / 5.27e6 - 1) < 0.01, params
    # the analytic formula of every block gives the same total
    backbone = model.backbone
    h, analytic = 112, 0
    for block in backbone.blocks:
        analytic += block.analytic_macs((1, block.c_in, h, h))
        h //= block.stride
    counted_blocks = sum(
        count_conv_linear_macs(b, [torch.zeros(1, b.c_in, s, s)])
        for b, s in zip(backbone.blocks, _sizes(backbone, 112)))
    assert analytic == counted_blocks


def _sizes(backbone, h):
    out = []
    for block in backbone.blocks:
        out.append(h)
        h //= block.stride
    return out


@pytest.mark.parametrize('op', OPS + ('ir_k3_e1_se', 'ir_k7_e4'))
@pytest.mark.parametrize('shape', [(24, 24, 1, 14), (24, 40, 2, 15),
                                   (16, 16, 1, 7)])
@pytest.mark.parametrize('expand_when_e1', [True, False])
def test_analytic_cost_equals_the_counter_per_op(op, shape, expand_when_e1):
    from projects.hournas.model import HNMBConv
    c_in, c_out, stride, h = shape
    block = HNMBConv(c_in, c_out, op, stride, dict(type='ReLU'),
                     expand_when_e1=expand_when_e1)
    x = torch.zeros(1, c_in, h, h)
    assert block.analytic_macs(x.shape) == count_conv_linear_macs(block, [x])
    assert block.analytic_params() == count_params(block)


def test_cost_table_equals_counting_the_standalone_net():
    supernet = _classifier(dict(type='HourNASSupernet', arch='toy',
                                mode='full', search_vital=True,
                                allow_skip=True, act_cfg=dict(type='ReLU')),
                           10, 128)
    x = torch.zeros(1, 3, 32, 32)
    table = build_cost_table(supernet, [x])
    rng = random.Random(0)
    vital = supernet.backbone.vital
    for _ in range(5):
        genotype = [rng.choice(OPS if i in vital else OPS + ('skip',))
                    for i in range(6)]
        net = _classifier(dict(type='HourNASNet', arch='toy',
                               genotype=genotype, act_cfg=dict(type='ReLU')),
                          10, 128)
        g = {str(i): op for i, op in enumerate(genotype)}
        assert table.macs(g) == count_conv_linear_macs(net, [x])
        assert table.params(g) == count_params(net)


def test_supernet_fixed_to_a_genotype_equals_the_standalone_net():
    torch.manual_seed(0)
    supernet = _classifier(dict(type='HourNASSupernet', arch='toy',
                                mode='full', search_vital=True,
                                act_cfg=dict(type='ReLU')), 10, 128)
    supernet.init_weights()
    # non-trivial BN statistics
    for m in supernet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    genotype = ['ir_k5_e6', 'ir_k3_e1', 'ir_k3_e6', 'ir_k5_e3', 'ir_k5_e1',
                'ir_k3_e3']
    Mutator(supernet).set({str(i): op for i, op in enumerate(genotype)})
    net = _classifier(dict(type='HourNASNet', arch='toy', genotype=genotype,
                           act_cfg=dict(type='ReLU')), 10, 128)
    net.load_state_dict(subnet_state_dict(supernet.state_dict(), genotype))
    supernet.double().eval()
    net.double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(supernet(x), net(x), atol=1e-12, rtol=0)


def test_vital_only_supernet_skips_the_non_vital_blocks():
    supernet = _classifier(dict(type='HourNASSupernet', arch='toy',
                                act_cfg=dict(type='ReLU')), 10, 128)
    mutator = Mutator(supernet)
    assert list(mutator.search_space()) == ['0', '2', '4']
    assert mutator.fixed() == {'1': 'skip', '3': 'skip', '5': 'skip'}
    # stage 2 builds the same parameters, so it loads stage 1's weights
    stage2 = _classifier(dict(type='HourNASSupernet', arch='toy',
                              mode='full', fixed_vital={'0': 'ir_k3_e6',
                                                        '2': 'ir_k5_e1',
                                                        '4': 'ir_k3_e1'},
                              act_cfg=dict(type='ReLU')), 10, 128)
    stage2.load_state_dict(supernet.state_dict(), strict=True)
    assert list(Mutator(stage2).search_space()) == ['1', '3', '5']


def test_bad_genotypes_are_named():
    with pytest.raises(ValueError, match='22 positions'):
        genotype_list(list(HOURNAS_F)[:-1], 22)
    with pytest.raises(ValueError, match=r"position 3: op 'ir_k7_e6'"):
        genotype_list(['ir_k3_e1'] * 3 + ['ir_k7_e6'] + ['ir_k3_e1'] * 18, 22)
    with pytest.raises(ValueError, match='unknown op name'):
        genotype_list(['conv3x3'] + ['ir_k3_e1'] * 21, 22)
    with pytest.raises(ValueError, match='vital'):
        genotype_list(['skip'] + ['ir_k3_e1'] * 21, 22, vital=[0])
    with pytest.raises(ValueError, match='fixed_vital'):
        _classifier(dict(type='HourNASSupernet', arch='toy', mode='full'),
                    10, 128)
    with pytest.raises(FileNotFoundError, match='has not run'):
        _classifier(dict(type='HourNASSupernet', arch='toy', mode='full',
                         fixed_vital='/nonexistent/best_genotype.json'),
                    10, 128)
    supernet = _classifier(dict(type='HourNASSupernet', arch='toy'), 10, 128)
    with pytest.raises(ValueError, match=r"block '2' has no op 'ir_k9_e1'"):
        Mutator(supernet).set({'0': 'ir_k3_e1', '2': 'ir_k9_e1',
                               '4': 'ir_k3_e1'})
    with pytest.raises(ValueError, match=r"missing \['4'\]"):
        Mutator(supernet).set({'0': 'ir_k3_e1', '2': 'ir_k3_e1'})


def test_sampler_frequencies_match_its_distribution_and_repeat():
    supernet = _classifier(dict(type='HourNASSupernet', arch='toy',
                                act_cfg=dict(type='ReLU')), 10, 128)
    probs = {'0': {'ir_k3_e1': 0.5, 'ir_k5_e6': 0.3, 'ir_k3_e3': 0.2},
             '2': {'ir_k5_e1': 1.0}}
    hook = SinglePathSamplerHook(probs=probs, seed=3)
    hook.mutator = Mutator(supernet)
    hook.probs = probs
    n = 6000
    draws = [hook.sample(i) for i in range(n)]
    assert draws[17] == hook.sample(17)  # the same iteration, the same path
    for op, p in probs['0'].items():
        count = sum(d['0'] == op for d in draws)
        sigma = (n * p * (1 - p)) ** 0.5
        assert abs(count - n * p) < 3 * sigma, (op, count)
    assert {d['2'] for d in draws} == {'ir_k5_e1'}
    # position 4 is uniform over the six ops
    for op in OPS:
        count = sum(d['4'] == op for d in draws)
        assert abs(count - n / 6) < 3 * (n * 5 / 36) ** 0.5


def test_differentiable_choice_mixes_and_exports_the_argmax():
    from projects.common.nas import DifferentiableChoice
    ops = {'a': torch.nn.Linear(3, 3), 'b': torch.nn.Linear(3, 3)}
    block = DifferentiableChoice(ops, alias='x')
    with torch.no_grad():
        block.arch_param.copy_(torch.tensor([0.3, 1.2]))
    x = torch.randn(4, 3)
    w = torch.softmax(torch.tensor([0.3, 1.2]), 0)
    expected = w[0] * ops['a'](x) + w[1] * ops['b'](x)
    assert torch.allclose(block(x), expected)
    model = torch.nn.Sequential(block)
    assert Mutator(model).export() == {'x': 'b'}
    block.fix('a')
    assert torch.equal(block(x), ops['a'](x))


def test_exported_config_rebuilds_the_chosen_ops(tmp_path, root):
    genotype = ['ir_k5_e6', 'skip', 'ir_k3_e1', 'ir_k5_e3', 'ir_k3_e6',
                'skip']
    out = export_config(f'{root}/configs/hournas/toy_hournas_retrain.py',
                        str(tmp_path / 'retrain.py'),
                        {'model.backbone.genotype': genotype})
    from mmengine.config import Config
    cfg = Config.fromfile(out)
    model = _classifier(cfg.model.backbone, 10, 128)
    backbone = model.backbone
    assert backbone.genotype == genotype
    for i, op in enumerate(genotype):
        block = backbone.blocks[i]
        if op == 'skip':
            assert isinstance(block, torch.nn.Identity)
        else:
            assert block.spec.name == op
            assert block.depthwise.conv.kernel_size[0] == block.spec.kernel
            assert block.project.conv.in_channels == \
                block.c_in * block.spec.expand


def test_recalibrated_bn_scores_at_least_as_well(toy_data):
    """On a supernet trained a little with mixed paths, a subnet's BN
    statistics re-estimated on its own path fit its activations: the
    training loss of that subnet does not get worse."""
    torch.manual_seed(0)
    supernet = _classifier(dict(type='HourNASSupernet', arch='toy',
                                mode='full', search_vital=True,
                                act_cfg=dict(type='ReLU')), 10, 128)
    mutator = Mutator(supernet)
    x = torch.randn(32, 3, 32, 32) * 2 + 1
    y = torch.randint(0, 10, (32,))
    opt = torch.optim.SGD(supernet.parameters(), lr=0.05, momentum=0.9)
    rng = random.Random(0)
    for _ in range(10):
        mutator.sample(rng)
        loss = torch.nn.functional.cross_entropy(supernet(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    genotype = {k: 'ir_k5_e6' for k in mutator.blocks}
    mutator.set(genotype)
    supernet.eval()

    def eval_loss():
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(supernet(x), y))

    before = eval_loss()
    recalibrate_bn(supernet, [x[:16], x[16:]], lambda b: supernet(b))
    after = eval_loss()
    assert after < before
    assert not supernet.training


def test_heldout_split_is_disjoint_and_stratified(toy_data):
    base = dict(type='CustomDataset', data_root=f'{toy_data}/toy_cls',
                ann_file='meta/train.txt', data_prefix='train',
                pipeline=[], indices=100)
    held = HeldOutSplit(base, 'heldout', per_class=3)
    rest = HeldOutSplit(base, 'train', per_class=3)
    assert len(held) == 30 and len(rest) == 70
    assert not set(held.indices) & set(rest.indices)
    labels = [held.get_cat_ids(i)[0] for i in range(len(held))]
    assert sorted(labels) == sorted(list(range(10)) * 3)
    with pytest.raises(ValueError, match='class 0 has 10 images'):
        HeldOutSplit(base, 'heldout', per_class=10)


def test_registered_names_do_not_shadow_upstream():
    import mmpretrain.models  # noqa: F401
    from mmpretrain.registry import MODELS
    for name in ('HourNASNet', 'HourNASSupernet', 'HNMBConv',
                 'DropoutLinearClsHead'):
        assert MODELS.get(name).__module__ == 'projects.hournas.model'
    assert 'EfficientNet' in MODELS.module_dict  # upstream's is untouched
    assert MODELS.get('EfficientNet').__module__.startswith('mmpretrain')


def test_genotype_json_round_trip(tmp_path):
    from projects.common.nas import load_genotype, save_genotype
    path = str(tmp_path / 'g.json')
    save_genotype(path, list(HOURNAS_F), macs=382885984)
    data = load_genotype(path)
    net = _classifier(dict(type='HourNASNet', genotype=path))
    assert net.backbone.genotype == list(HOURNAS_F) == data['genotype']
    assert json.load(open(path))['macs'] == 382885984


def test_cost_table_of_differentiable_blocks_counts_one_op_each():
    """A differentiable block runs every candidate in its forward; the
    table still costs the network of one op per block."""
    from projects.common.nas import DifferentiableChoice

    def conv(k):
        return torch.nn.Conv2d(4, 4, k, padding=k // 2)

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        DifferentiableChoice({'c3': conv(3), 'c5': conv(5)}, alias='a'),
        torch.nn.Conv2d(4, 2, 1))
    x = torch.zeros(1, 3, 8, 8)
    table = build_cost_table(model, [x])
    for op, k in (('c3', 3), ('c5', 5)):
        plain = torch.nn.Sequential(model[0], conv(k), model[2])
        assert table.macs({'a': op}) == count_conv_linear_macs(plain, [x])
        assert table.params({'a': op}) == count_params(plain)


def test_vital_only_mode_refuses_options_it_would_ignore():
    with pytest.raises(ValueError, match="options of mode='full'"):
        _classifier(dict(type='HourNASSupernet', arch='toy',
                         fixed_vital={'0': 'ir_k3_e1'}), 10, 128)
    with pytest.raises(ValueError, match='non-vital position 1'):
        _classifier(dict(type='HourNASSupernet', arch='toy',
                         fixed_choices={1: 'ir_k3_e1'}), 10, 128)


def test_shrinker_step_checks_the_budget_and_the_vital_ops():
    from projects.hournas.search import shrink
    vital = {'0': 'ir_k5_e6', '2': 'ir_k5_e6', '4': 'ir_k5_e6'}
    supernet = _classifier(dict(type='HourNASSupernet', arch='toy',
                                mode='full', fixed_vital=vital,
                                act_cfg=dict(type='ReLU')), 10, 128)
    mutator = Mutator(supernet)
    table = build_cost_table(supernet, [torch.zeros(1, 3, 32, 32)])
    smallest = table.macs({**vital, '1': 'ir_k3_e1', '3': 'ir_k3_e1',
                           '5': 'ir_k3_e1'})
    with pytest.raises(ValueError, match=f'smallest network with these '
                       f'vital ops \\({smallest:,} MACs\\)'):
        shrink(table, mutator, [1, 3, 5], smallest - 1)
    probs, record = shrink(table, mutator, [1, 3, 5], 2_850_000, steps=200)
    assert sorted(probs) == ['1', '3', '5']
    assert record['remaining_budget'] == 2_850_000 - (
        table.fixed_macs + sum(table.ops[k][op]['macs']
                               for k, op in vital.items()))
    free = _classifier(dict(type='HourNASSupernet', arch='toy', mode='full',
                            search_vital=True, act_cfg=dict(type='ReLU')),
                       10, 128)
    with pytest.raises(ValueError, match='vital blocks fixed'):
        shrink(build_cost_table(free, [torch.zeros(1, 3, 32, 32)]),
               Mutator(free), [1, 3, 5], 2_850_000)


def test_stage2_sampling_keeps_the_shrunk_space_and_checks_its_name():
    from projects.hournas.search import (
        HourNASPathSamplerHook,
        sampling_probs,
    )
    shrunk = {'1': {'ir_k3_e1': 0.7, 'ir_k3_e6': 0.1, 'ir_k5_e3': 0.2},
              '3': {'ir_k5_e1': 1.0}}
    assert sampling_probs(shrunk, 'shrunk') == shrunk
    uniform = sampling_probs(shrunk, 'uniform')
    # the same ops (the shrunk space), each drawn equally often
    assert {k: sorted(v) for k, v in uniform.items()} == {
        k: sorted(v) for k, v in shrunk.items()}
    assert uniform['1'] == {op: pytest.approx(1 / 3) for op in shrunk['1']}
    assert uniform['3'] == {'ir_k5_e1': 1.0}
    # an op the shrinker dropped (probability 0) stays dropped
    assert 'ir_k5_e6' not in sampling_probs(
        {'1': {'ir_k3_e1': 1.0, 'ir_k5_e6': 0.0}}, 'uniform')['1']
    with pytest.raises(ValueError, match="'fair'"):
        sampling_probs(shrunk, 'fair')
    with pytest.raises(ValueError, match="'fair'"):
        HourNASPathSamplerHook(budget=1, sampling='fair')


def _entangled(**kwargs):
    return _classifier(dict(type='HourNASSupernet', arch='toy', mode='full',
                            search_vital=True, weight_sharing='entangled',
                            act_cfg=dict(type='ReLU'), **kwargs), 10, 128)


def _random_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize('train', [False, True])
def test_entangled_supernet_equals_the_standalone_net_of_its_slices(train):
    torch.manual_seed(0)
    supernet = _entangled()
    _random_bn(supernet)
    supernet.double()
    mutator = Mutator(supernet)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    rng = random.Random(1)
    outs = []
    for _ in range(3):
        genotype = [rng.choice(OPS) for _ in range(6)]
        mutator.set({str(i): op for i, op in enumerate(genotype)})
        net = _classifier(dict(type='HourNASNet', arch='toy',
                               genotype=genotype, act_cfg=dict(type='ReLU')),
                          10, 128).double()
        net.load_state_dict(
            {'backbone.' + k: v for k, v in
             supernet.backbone.subnet_state_dict(genotype).items()} |
            {k: v for k, v in supernet.state_dict().items()
             if not k.startswith('backbone.')})
        supernet.train(train)
        net.train(train)
        with torch.no_grad():  # the backbones: the head has dropout
            ref = net.backbone(x)[0]
            assert torch.allclose(supernet.backbone(x)[0], ref, atol=1e-12,
                                  rtol=0)
        outs.append(ref)
        if train:  # the slices' running statistics moved like the net's
            for k, v in supernet.backbone.subnet_state_dict(
                    genotype).items():
                assert torch.allclose(v, net.backbone.state_dict()[k],
                                      atol=1e-12, rtol=0), k
    # the paths differ: the test would notice a supernet ignoring its path
    assert not torch.allclose(outs[0], outs[1])


def test_entangled_ops_are_slices_of_one_op_and_cost_like_separate_ones():
    sep = _classifier(dict(type='HourNASSupernet', arch='toy', mode='full',
                           search_vital=True, act_cfg=dict(type='ReLU')),
                      10, 128)
    ent = _entangled()
    x = torch.zeros(1, 3, 32, 32)
    t_sep, t_ent = build_cost_table(sep, [x]), build_cost_table(ent, [x])
    assert t_ent.ops == t_sep.ops
    assert t_ent.fixed_macs == t_sep.fixed_macs
    assert t_ent.fixed_params == t_sep.fixed_params
    # one position's parameters are its largest op's
    block = ent.backbone.blocks[2]
    largest = block.candidate_module('ir_k5_e6')
    assert count_params(block) == count_params(largest)
    # a small op's gradient reaches its slices only
    mutator = Mutator(ent)
    mutator.set({str(i): 'ir_k3_e1' for i in range(6)})
    ent.train()
    ent.backbone(torch.randn(2, 3, 32, 32))[0].square().sum().backward()
    big = block.shared.largest
    c_in = big.c_in
    grad = big.expand.conv.weight.grad
    assert grad[:c_in].abs().sum() > 0 and grad[c_in:].abs().sum() == 0
    dw = big.depthwise.conv.weight.grad
    assert dw[:c_in, :, 1:4, 1:4].abs().sum() > 0
    ring = dw[:c_in].clone()
    ring[:, :, 1:4, 1:4] = 0
    assert ring.abs().sum() == 0


def test_entangled_supernet_refuses_what_it_cannot_slice():
    with pytest.raises(ValueError, match="weight_sharing must be"):
        _classifier(dict(type='HourNASSupernet', arch='toy',
                         weight_sharing='shared'), 10, 128)
    with pytest.raises(ValueError, match='no expansion conv'):
        _entangled(expand_when_e1=False)
    with pytest.raises(ValueError, match='6 positions'):
        _entangled().backbone.subnet_state_dict(['ir_k3_e1'] * 5)
    with pytest.raises(ValueError, match='slices plain affine BN'):
        _entangled(norm_cfg=dict(type='SyncBN'))
    # the checkpoint-level helper would drop the shared weights silently
    with pytest.raises(ValueError, match='weight-entangled'):
        subnet_state_dict(_entangled().state_dict(), ['ir_k3_e1'] * 6)
