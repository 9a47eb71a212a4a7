from ami.jobs.models.job import ImageTask, Job, JobStage
from ami.jobs.models.log import JobLog

__all__ = ["ImageTask", "Job", "JobLog", "JobStage"]
