"""Evaluation that can be trusted: identical folds for every method, controls, uncertainty, and the
pretraining evidence (masked reconstruction on held-out recordings against baselines).

    protocol        the folds of each task (leave-one-run-out, leave-one-subject-out, time blocks with a gap)
    stats           95 % intervals over folds x seeds, paired tests over folds
    reference       classical references: band power + logistic regression, tangent space + logistic regression
    run             the whole evaluation -> results/evaluation.json, the markdown table and plain-words verdicts
    recheck         rerun some of a file's units here: how far another device moves their fold scores
    reconstruction  masked-sample L1 on held-out recordings vs zeros / interpolation / random init
    figures         validation curve with baselines, t-SNE of embeddings, CDSE topomaps over pretraining
"""
