"""The unmixing solvers and the steps they share: FCLS, DeepGU's Z- and A-steps, ELMM/GLMM/PLMM."""
