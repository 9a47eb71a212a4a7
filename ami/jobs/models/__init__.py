from ami.jobs.models.job import ImageTask, Job, JobStage, ProgressIncrement
from ami.jobs.models.log import JobLog

__all__ = ["ImageTask", "Job", "JobLog", "JobStage", "ProgressIncrement"]
