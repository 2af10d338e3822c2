# glmmTMB and lme4 on the simulated data of benchmarks/engine.py, cases d-g.
#
# First write the data:   python benchmarks/engine.py --case all --write-csv DIR
# Then time R's fits:      Rscript benchmarks/engine_r.R DIR            # every case and package
#                          Rscript benchmarks/engine_r.R DIR e lme4     # one case, one package
#
# Each fit runs in its own R process (as engine.py runs each case in its own Python
# process) and prints one line: the case, the package, the elapsed and CPU (user + system)
# time of the fit (system.time, reading the CSV excluded), the log-likelihood (REML log-likelihood for
# case g), the fixed effects and the peak resident memory of the process (VmHWM from
# /proc/self/status: R, the packages and the data included). glmer uses its default
# Laplace approximation (nAGQ = 1); case g is fitted by REML with lmer and glmmTMB.

formulas <- list(
  d = y ~ x + cond + age + group + freq + (1 | subject) + (1 | item),
  e = y ~ x + cond + age + group + freq + (1 | subject) + (1 + x | item),
  f = y ~ x + z + w + u + v + (1 + x | group),
  g = y ~ x + service + (1 | s) + (1 | d) + (1 | dept)
)
grouping <- list(d = c("subject", "item"), e = c("subject", "item"), f = "group",
                 g = c("s", "d", "dept"))

peak_mib <- function() {
  status <- tryCatch(readLines("/proc/self/status"), error = function(e) character())
  line <- grep("^VmHWM:", status, value = TRUE)
  if (length(line) == 0) return(NA_real_)
  as.numeric(gsub("[^0-9]", "", line)) / 1024
}

fit_one <- function(dir, case, package) {
  data <- read.csv(file.path(dir, paste0("case_", case, ".csv")))
  for (g in grouping[[case]]) data[[g]] <- factor(data[[g]])
  gaussian_case <- case == "g"
  suppressPackageStartupMessages(library(package, character.only = TRUE))
  timing <- system.time({
    fit <- if (package == "lme4" && gaussian_case) {
      lme4::lmer(formulas[[case]], data, REML = TRUE)
    } else if (package == "lme4") {
      lme4::glmer(formulas[[case]], data, family = binomial)
    } else if (gaussian_case) {
      glmmTMB::glmmTMB(formulas[[case]], data, family = gaussian, REML = TRUE)
    } else {
      glmmTMB::glmmTMB(formulas[[case]], data, family = binomial)
    }
  })
  elapsed <- timing[["elapsed"]]
  cpu <- timing[["user.self"]] + timing[["sys.self"]]
  beta <- if (package == "lme4") lme4::fixef(fit) else glmmTMB::fixef(fit)$cond
  cat(sprintf(
    "case %s | %s %s | elapsed %.2f s | cpu %.2f s | logLik %.4f | peak %.1f MiB | fixef %s\n",
    case, package, as.character(packageVersion(package)), elapsed, cpu,
    as.numeric(logLik(fit)), peak_mib(),
    paste(sprintf("%s=%.4f", names(beta), beta), collapse = " ")
  ))
}

args <- commandArgs(trailingOnly = TRUE)
if (length(args) == 0) stop("usage: Rscript benchmarks/engine_r.R DIR [case package]")
if (length(args) >= 3) {
  fit_one(args[[1]], args[[2]], args[[3]])
} else {
  script <- sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE))
  cases <- if (length(args) == 2) args[[2]] else names(formulas)
  for (case in cases) {
    for (package in c("glmmTMB", "lme4")) {
      system2(file.path(R.home("bin"), "Rscript"), c(script, args[[1]], case, package))
    }
  }
}
