"""TfliteModel, the kit's one reader and editor of .tflite flatbuffers."""

import numpy as np
import pytest

from converter.errors import KitError
from converter.recipe import QuantizeSettings
from converter.stages import quantize as quantize_stage
from converter.tflite.model import read_graph, read_model
from converter.tflite.tflite_model import TfliteModel
from converter.tflm.runners import quantize, run_tflm
from tests.conftest import tiny_classifier, tiny_dataset


@pytest.fixture(scope="module")
def tiny():
    data = tiny_dataset()
    return quantize_stage.convert(tiny_classifier(), QuantizeSettings(), data), data


def test_reads_what_the_summaries_report(tiny):
    model_bytes, _ = tiny
    model = TfliteModel.from_bytes(model_bytes)
    info, graph = read_model(model_bytes), read_graph(model_bytes)
    assert [model.operator_name(op) for op in model.operators] == [n.op for n in graph.nodes]
    assert info.operators == ("CONV_2D", "RESHAPE", "FULLY_CONNECTED")
    kernel = next(t for t in model.tensors if model.tensor_name(t).endswith("hidden/MatMul"))
    values = model.constant(kernel)
    assert values.dtype == np.int8 and values.shape == (16, 288)
    index = model.tensors.index(kernel)
    assert [model.operator_name(model.operators[o]) for o, _ in model.consumers(index)] == ["FULLY_CONNECTED"]
    assert model.constant(model.tensors[model.subgraph.inputs[0]]) is None  # an activation has no data


def test_an_unedited_model_packs_to_a_model_that_runs_the_same(tiny):
    model_bytes, data = tiny
    repacked = TfliteModel.from_bytes(model_bytes).to_bytes()
    aligned = TfliteModel.from_bytes(model_bytes).to_bytes(aligned=True)
    info = read_model(model_bytes)
    inputs = [quantize(data.x_eval, info.inputs[0])]
    expected = run_tflm(model_bytes, inputs)[0]
    for packed in (repacked, aligned):
        assert read_model(packed) == info
        assert np.array_equal(run_tflm(packed, inputs)[0], expected)


def test_edits_go_to_the_copy_and_compact_renumbers_buffers(tiny):
    model_bytes, _ = tiny
    original = TfliteModel.from_bytes(model_bytes)
    edited = original.copy()
    kernel = next(t for t in edited.tensors if edited.tensor_name(t).endswith("logits/MatMul"))
    replacement = np.full(edited.shape(kernel), 3, np.int8)
    old_buffer, kernel.buffer = kernel.buffer, edited.add_buffer(replacement)
    assert edited.opcode_index("TFLM_DECODE") == len(original.root.operatorCodes)
    assert edited.opcode_index("CONV_2D") == 0
    edited.compact()
    assert len(edited.buffers) == len(original.buffers)  # the old buffer dropped, the new one kept
    reread = TfliteModel.from_bytes(edited.to_bytes())
    same = next(t for t in reread.tensors if reread.tensor_name(t).endswith("logits/MatMul"))
    assert np.array_equal(reread.constant(same), replacement)
    untouched = next(t for t in original.tensors if original.tensor_name(t).endswith("logits/MatMul"))
    assert untouched.buffer == old_buffer and not np.array_equal(original.constant(untouched), replacement)


def test_a_constant_whose_data_does_not_fit_its_shape_is_refused(tiny):
    model_bytes, _ = tiny
    model = TfliteModel.from_bytes(model_bytes)
    kernel = next(t for t in model.tensors if model.tensor_name(t).endswith("hidden/MatMul"))
    kernel.shape = np.array([16, 289], np.int32)  # one column more than the data holds
    with pytest.raises(KitError, match=r"shape \[16, 289\] \(4,624 elements\) but 4,608 bytes of data"):
        TfliteModel.from_bytes(model.to_bytes())
