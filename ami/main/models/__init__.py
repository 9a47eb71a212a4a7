from ami.main.models.detection import Classification, Detection
from ami.main.models.project import Project
from ami.main.models.source_image import SourceImage

__all__ = ["Classification", "Detection", "Project", "SourceImage"]
