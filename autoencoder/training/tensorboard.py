"""The TensorBoard logger of training runs (conf/logger/tensorboard.yaml): Lightning's, with the
losses first in Time Series and the HParams tab written once a run has its final figures.

Time Series sorts its cards by tag, in groups named by the tag's first part, and opens the first two
groups only. So the scalars outside the loss groups (`test/`, `train/`, `val/`) are logged under
`vitals/` (`vitals/lr-Adam`, `vitals/speed/epochs_per_s`), which sorts after them, and the `epoch`
that Lightning adds to every metric dict of the module is left out (the step axis counts the run).
The HParams tab is written with TensorBoard's own records (an experiment, a session's start and end)
rather than through `log_hyperparams`: they carry the display names and the `differs` marks that
order the columns (autoencoder.training.hparams), and metrics read from the run's own tags.
"""

from collections.abc import Mapping, Sequence

from google.protobuf import struct_pb2
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from typing_extensions import override

from autoencoder.training.hparams import Column, Metric

LOSS_GROUPS = ("test", "train", "val")
AFTER_LOSSES = "vitals"


def _value(value: bool | int | float | str) -> struct_pb2.Value:
    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    return struct_pb2.Value(number_value=value) if isinstance(value, (int, float)) else struct_pb2.Value(string_value=value)


_TYPES = {"bool_value": api_pb2.DATA_TYPE_BOOL, "number_value": api_pb2.DATA_TYPE_FLOAT64, "string_value": api_pb2.DATA_TYPE_STRING}


def _summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


class HParamsTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger, with the scalars other than losses under AFTER_LOSSES and no
    `epoch`, plus `log_hparams_tab`."""

    @override
    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        tags = {key: key if key.split("/", 1)[0] in LOSS_GROUPS else f"{AFTER_LOSSES}/{key}" for key in metrics if key != "epoch"}
        super().log_metrics({tag: metrics[key] for key, tag in tags.items()}, step)

    @rank_zero_only
    def log_hparams_tab(self, columns: Sequence[Column], metrics: Sequence[Metric], status: str, step: int) -> None:
        """The run's row of the HParams tab: `columns`, `metrics` (their values logged as scalars at
        `step`) and the session's status (success for a completed run, else failure)."""
        for metric in metrics:
            if metric.value is not None:
                self.experiment.add_scalar(metric.tag, metric.value, step)
        values = {column.name: _value(column.value) for column in columns}
        experiment = api_pb2.Experiment(
            hparam_infos=[
                api_pb2.HParamInfo(name=c.name, display_name=c.label, type=_TYPES[values[c.name].WhichOneof("kind")], differs=c.leads) for c in columns
            ],
            metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m.tag), display_name=m.label) for m in metrics],
        )
        start = plugin_data_pb2.SessionStartInfo(hparams=values)
        end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS if status == "completed" else api_pb2.STATUS_FAILURE)
        writer = self.experiment._get_file_writer()
        writer.add_summary(_summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)), step)
        writer.add_summary(_summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)), step)
        writer.add_summary(_summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)), step)
        self.experiment.close()  # Lightning closed it after testing; adding to it opened a new event file
