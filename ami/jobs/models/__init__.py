from ami.jobs.models.budget import JobLogBudget
from ami.jobs.models.job import ImageTask, Job, JobStage, ProgressIncrement
from ami.jobs.models.log import JobLog

__all__ = ["ImageTask", "Job", "JobLog", "JobLogBudget", "JobStage", "ProgressIncrement"]
