"""The onnxruntime backend: an exported ``.onnx`` file (``scripts/export_onnx.py``) behind the family interface.

``build_family(name, 'model.onnx', backend='onnxruntime')`` (``--backend onnxruntime`` in the CLI) runs the file with
onnxruntime instead of PyTorch. ``in_size`` / ``out_size`` are read from the model's input and output shapes, and the
fidelity weight reaches the model's ``mask_bias`` input through the same :func:`weight_to_mask_bias` as the PyTorch
family (a model without that input, e.g. Cat-Conv, refuses any weight but 0.5 / None). onnxruntime's CPU provider
runs it; with ``device='cuda'`` (or 'auto' on a GPU machine) its CUDA provider when that build of onnxruntime has
one. The model is fp32: bf16 / fp16 are refused.
"""
import numpy as np
import torch

from panininet.families.base import RestorationFamily, register_backend, select_device
from panininet.families.panini_family import weight_to_mask_bias


def _providers(device):
    """onnxruntime execution providers for ``device`` (None/'auto': CUDA when this onnxruntime has it)."""
    import onnxruntime as ort
    available = ort.get_available_providers()
    wants_cuda = device in (None, 'auto') or select_device(device).type == 'cuda'
    if wants_cuda and 'CUDAExecutionProvider' in available:
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']
    if device not in (None, 'auto') and select_device(device).type != 'cpu':
        raise ValueError(f'--backend onnxruntime: this onnxruntime has no provider for --device {device} '
                         f'(it has {", ".join(available)}); use --device cpu, or install onnxruntime-gpu.')
    return ['CPUExecutionProvider']


@register_backend('onnxruntime')
class OnnxRuntimeFamily(RestorationFamily):
    """An exported restoration network run by onnxruntime.

    Args:
        session (onnxruntime.InferenceSession): A model with input ``input`` (b, 3, S, S), optional input
            ``mask_bias`` (L,), and output ``output`` (b, 3, S', S').
        path (str): Its file (for messages). Default: '<onnx>'.

    Raises:
        ValueError: The model does not have those inputs and outputs.
    """

    def __init__(self, session, path='<onnx>'):
        self.session = session
        self.path = path
        self.net = None  # no PyTorch module
        self.precision = 'fp32'
        self.device = torch.device('cpu')  # faces come as CPU tensors; a CUDA provider copies them itself
        inputs = {i.name: i.shape for i in session.get_inputs()}
        outputs = {o.name: o.shape for o in session.get_outputs()}
        shape, out_shape = inputs.get('input'), outputs.get('output')
        if (shape is None or out_shape is None or len(shape) != 4 or len(out_shape) != 4
                or not all(isinstance(d, int) for d in (shape[2], shape[3], out_shape[2], out_shape[3]))):
            raise ValueError(f'{path}: not a model written by scripts/export_onnx.py (needs input "input" '
                             f'(batch, 3, S, S) and output "output"; it has inputs {inputs}, outputs {outputs})')
        self.in_size, self.out_size = int(shape[2]), int(out_shape[2])
        self.num_levels = int(inputs['mask_bias'][0]) if 'mask_bias' in inputs else None
        self.supports_weight = self.num_levels is not None

    @classmethod
    def from_file(cls, name, path, device=None, precision='fp32', weights_dir=None):
        """Load ``path`` (an ``.onnx`` file) into an onnxruntime session.

        Args:
            name (str): The ``-v`` name asked for; the file decides the network (as a weights file's recorded
                architecture does for the PyTorch families).
            path (str): The ``.onnx`` file.
            device (str | torch.device | None): 'cpu', 'cuda' (needs onnxruntime-gpu) or None/'auto'.
            precision (str): Only 'fp32' (the exported model's arithmetic).
            weights_dir: Unused.

        Raises:
            ImportError: onnxruntime is not installed.
            ValueError: Not an ONNX file onnxruntime can load, not one of ours, bf16/fp16, or no provider for
                ``device``.
        """
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError('--backend onnxruntime needs onnxruntime: pip install "panininet[onnx]"') from err
        if precision != 'fp32':
            raise ValueError(f'--backend onnxruntime runs the exported fp32 model; drop --{precision}.')
        if not str(path).endswith('.onnx'):
            raise ValueError(f'--backend onnxruntime takes an .onnx file (scripts/export_onnx.py writes one), '
                             f'got --model_path {path}')
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=_providers(device))
        except ValueError:
            raise
        except Exception as err:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, NoSuchFile)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ValueError(f'{path}: onnxruntime cannot load it ({first}); give a file written by '
                             'scripts/export_onnx.py') from None
        return cls(session, path)

    def check_weight(self, weight):
        if weight_to_mask_bias(weight) != 0 and not self.supports_weight:
            raise ValueError(f'weight (-w) acts on the DAFI masks; {self.path} has no mask_bias input. '
                             'Leave -w at 0.5.')

    def forward(self, faces, weight):
        feeds = {'input': faces.detach().float().cpu().numpy()}
        if self.supports_weight:
            feeds['mask_bias'] = np.full(self.num_levels, weight_to_mask_bias(weight), np.float32)
        return torch.from_numpy(self.session.run(['output'], feeds)[0]).to(faces.device)
