# the path without the second stream (S) and the Nsight Compute metrics of calls 5 and 9 (sourced by both)
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
S=epi+compile+dec+proj+fold+ring+tail+crelu+otaps+mrelu+rope32+means+vorder+radixa+upc+tpad+blists+ffin
M=gpu__time_duration.sum,launch__grid_size,launch__registers_per_thread,sm__throughput.avg.pct_of_peak_sustained_elapsed
M=$M,lts__t_sector_hit_rate.pct,dram__bytes_read.sum,sm__warps_active.avg.pct_of_peak_sustained_active
M=$M,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active
M=$M,smsp__cycles_active.avg.pct_of_peak_sustained_elapsed,l1tex__t_bytes.sum
