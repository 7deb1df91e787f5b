# env.sh: site hook, sourced by slurm/sweep.sh (bash) before it looks for qsweep and starts the
# ranks. Put here what your cluster needs to run a qsweep built against its modules: the same
# `module load` lines you built with (docs/cluster.md), and library paths. Everything exported
# reaches every rank. Empty (as shipped), it changes nothing. To keep your own copy outside the
# repository: sbatch --export=ALL,QSWEEP_ENV=$HOME/qsweep-env.sh slurm/sweep.sh JOB.yaml
#
# Examples (names differ between sites: `module avail openmpi cuda hdf5` lists yours):
#
#   module purge
#   module load gcc/12.2.0 openmpi/4.1.5 cuda/12.1 hdf5/1.14.1 boost/1.83.0
#
# libtorch from a PyTorch installation (a conda or venv environment), as used for Torch_DIR:
#
#   export LD_LIBRARY_PATH=$HOME/envs/torch/lib/python3.11/site-packages/torch/lib:${LD_LIBRARY_PATH:-}
#
# HDF5 1.10+ file locking fails on some parallel file systems (Lustre without flock, GPFS):
#
#   export HDF5_USE_FILE_LOCKING=FALSE
#
# Open MPI over a fabric that needs choosing (only where the default fails):
#
#   export OMPI_MCA_pml=ucx
