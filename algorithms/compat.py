"""The Qt and QGIS enums the plugin uses, in forms that both QGIS 3.22 (Qt5) and QGIS 4 (Qt6) accept.

Qt6 builds accept only scoped enum members (``Enum.Member``, never ``Class.Member``) and have no ``QVariant``
type constants. QGIS 3.36 moved the Processing enums into ``Qgis`` (``Qgis.ProcessingSourceType.VectorPoint``);
3.22 has them only scoped in their classes (``QgsProcessing.SourceType.TypeVectorPoint``). Each name below is the
newest form when this QGIS has it, otherwise the 3.22 scoped form; ``tests/test_qt6_forms.py`` keeps the rest of
the plugin free of Qt5-only forms.
"""

from qgis.core import (Qgis, QgsContrastEnhancement, QgsFeatureSink, QgsField, QgsProcessing,
                       QgsProcessingModelChildParameterSource,
                       QgsProcessingParameterDefinition, QgsProcessingParameterFile, QgsProcessingParameterNumber,
                       QgsWkbTypes)
from qgis.PyQt.QtCore import QMetaType


def _newest(new, old):
    """``Qgis.<new>`` (a dotted path below ``Qgis``) where this QGIS has it, else ``old()``."""
    value = Qgis
    try:
        for part in new.split("."):
            value = getattr(value, part)
    except AttributeError:
        return old()
    return value


#: a point layer (feature sinks of vca and bundles).
SOURCE_VECTOR_POINT = _newest("ProcessingSourceType.VectorPoint", lambda: QgsProcessing.SourceType.TypeVectorPoint)
#: a polygon layer (REGIONS of regions, endmembers and the workflow).
SOURCE_VECTOR_POLYGON = _newest("ProcessingSourceType.VectorPolygon",
                                lambda: QgsProcessing.SourceType.TypeVectorPolygon)
#: a model child's parameter fed by one of the model's own parameters.
MODEL_PARAMETER_SOURCE = _newest("ProcessingModelChildParameterSource.ModelParameter",
                                 lambda: QgsProcessingModelChildParameterSource.Source.ModelParameter)
#: number parameter types.
NUMBER_INTEGER = _newest("ProcessingNumberParameterType.Integer", lambda: QgsProcessingParameterNumber.Type.Integer)
NUMBER_DOUBLE = _newest("ProcessingNumberParameterType.Double", lambda: QgsProcessingParameterNumber.Type.Double)
#: parameter flags.
FLAG_ADVANCED = _newest("ProcessingParameterFlag.Advanced",
                        lambda: QgsProcessingParameterDefinition.Flag.FlagAdvanced)
FLAG_OPTIONAL = _newest("ProcessingParameterFlag.Optional",
                        lambda: QgsProcessingParameterDefinition.Flag.FlagOptional)
#: a file parameter that takes a folder.
FILE_FOLDER = _newest("ProcessingFileParameterBehavior.Folder", lambda: QgsProcessingParameterFile.Behavior.Folder)
#: point geometries.
WKB_POINT = _newest("WkbType.Point", lambda: QgsWkbTypes.Type.Point)
FAST_INSERT = QgsFeatureSink.Flag.FastInsert
STRETCH_TO_MIN_MAX = QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum
#: message bar levels.
MESSAGE_WARNING = Qgis.MessageLevel.Warning
#: attribute types (QMetaType's; QVariant's type constants do not exist in Qt6).
STRING, INTEGER = QMetaType.Type.QString, QMetaType.Type.Int


def field(name, meta_type):
    """A ``QgsField`` of the ``QMetaType.Type`` ``meta_type``: QGIS 3.38 and later take it as it is; earlier ones
    take a ``QVariant.Type``, whose numbers are QMetaType's, so they get the number."""
    return QgsField(name, meta_type if Qgis.versionInt() >= 33800 else int(meta_type))
