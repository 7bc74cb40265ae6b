"""Batch systems: profiles, worker job scripts, and submitting, cancelling and watching jobs.

Slurm is supported and tested against a real Slurm; PBS (PBS Pro / OpenPBS) scripts are rendered
and submitted the same way.  Imports only the resource layer; the command line drives it.
"""

from ._ledger import SubmittedJob as SubmittedJob
from ._ledger import default_state_dir as default_state_dir
from ._ledger import forget_jobs as forget_jobs
from ._ledger import job_key_file as job_key_file
from ._ledger import jobs_file as jobs_file
from ._ledger import record_jobs as record_jobs
from ._ledger import recorded_jobs as recorded_jobs
from ._ledger import write_job_key as write_job_key
from ._profile import PROFILE_KEYS as PROFILE_KEYS
from ._profile import SYSTEMS as SYSTEMS
from ._profile import Profile as Profile
from ._profile import System as System
from ._profile import load_profile as load_profile
from ._profile import profile_from_dict as profile_from_dict
from ._script import check_key_file as check_key_file
from ._script import render_script as render_script
from ._shipped import resources_dir as resources_dir
from ._shipped import template_path as template_path
from ._submission import cancel as cancel
from ._submission import job_states as job_states
from ._submission import parse_qstat_json as parse_qstat_json
from ._submission import submit as submit
