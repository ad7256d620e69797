"""The result kinds the probes write, declared beside them (``finetune.result_kinds``):
``cka``, ``distance`` and ``fit``. Imports nothing of the probes, so reading the
declarations costs no torch."""

from __future__ import annotations

from finetune.result_kinds import Attribute, Dataset, ResultKind, register_kind

# Entries are kept dense, one to a line where they fit.
# fmt: off
# The two runs compared, as the files of `cka` and `barrier` name them.
COMPARED_RUNS = (
    Attribute("run_a", "run directory of A"),
    Attribute("run_b", "run directory of B"),
    Attribute("weights_a", "weights file of A (e.g. `final.safetensors`)"),
    Attribute("weights_b", "weights file of B (`init.safetensors` for `init`)"),
    Attribute("label_a", "short name of A, `RUN:WEIGHTS`"),
    Attribute("label_b", "short name of B"),
    Attribute("config_hash_a", "`config_hash` of A's run"),
    Attribute("config_hash_b", "`config_hash` of B's run"),
)

register_kind(ResultKind(
    "cka",
    writers=("probes.similarity.compare_runs",),
    intro="""\
Written by `landscape cka RUN_A RUN_B --out F.h5` (`probes.similarity.compare_runs`;
heatmap in `F.png`): minibatch CKA
(Nguyen, Raghu, Kornblith 2021: the unbiased HSIC of every pair of layers summed over
minibatches, then normalised) between the representations of two models on the same
examples. La, Lb = layers of A and of B. With `--layers groups` a group's representation is
what it hands to the next group (the input of the next group's first module), and the last
group's is the logits.""",
    attributes=(
        *COMPARED_RUNS,
        Attribute("data", "dataset spec the examples came from"),
        Attribute("split", "its split"),
        Attribute("pool", "`flatten` (all features) or `mean` (averaged over positions or tokens)"),
        Attribute("batch_size",
                  "examples per minibatch (the last may be larger: a remainder under 4 joins it)"),
        Attribute("estimator", "the HSIC estimator used"),
        Attribute("device", "device description (JSON)"),
    ),
    datasets=(
        Dataset("cka", "(La, Lb)", "float64", "CKA of layer i of A with layer j of B"),
        Dataset("layers_a", "(La,)", "string", "layer names of A, input to output"),
        Dataset("layers_b", "(Lb,)", "string", "layer names of B"),
        Dataset("diagonal", "(La,)", "float64",
                "CKA of each layer with the same layer of B; only when both have "
                "the same layers", optional=True),
    ),
    summary=(
        Attribute("examples", "examples used"),
        Attribute("mean_diagonal", "mean of `diagonal` (NaN when the layers differ)"),
        Attribute("seconds", "wall time of the forward passes and the accumulation"),
    ),
))

register_kind(ResultKind(
    "distance",
    writers=("probes.distance.distance_between_runs",),
    intro="""\
Written by `landscape distance RUN_A [RUN_B] --out F.h5` (`probes.distance.distance_between_runs`;
bar chart in `F.png`): how far A's
parameters are from the reference B (default: A's own init), over the parameters of every
layer group (buffers such as BatchNorm statistics are not included). T = parameter
tensors, G = layer groups. `relative_distance` is `‖a − b‖ / ‖b‖`, `cosine` is
`⟨a, b⟩ / (‖a‖ ‖b‖)`, computed in float64.""",
    attributes=(
        Attribute("run_a", "run directory of A"),
        Attribute("run_b", "run directory of B"),
        Attribute("weights_a", "weights file of A"),
        Attribute("weights_b", "weights file of B"),
        Attribute("label_a", "short name of A, `RUN:WEIGHTS`"),
        Attribute("label_b", "short name of B"),
        Attribute("model", "timm architecture of both"),
        Attribute("config_hash_a", "`config_hash` of A's run"),
        Attribute("config_hash_b", "`config_hash` of B's run"),
    ),
    datasets=(
        Dataset("tensors/names", "(T,)", "string", "parameter names, grouped input to output"),
        Dataset("tensors/group", "(T,)", "int64",
                "index into `groups/names` of each tensor's group"),
        Dataset("tensors/numel", "(T,)", "int64", "number of elements of each tensor"),
        Dataset("tensors/distance", "(T,)", "float64", "`‖a − b‖` per tensor"),
        Dataset("tensors/relative_distance", "(T,)", "float64",
                "`‖a − b‖ / ‖b‖` per tensor (NaN where `b` is zero)"),
        Dataset("tensors/cosine", "(T,)", "float64", "cosine similarity per tensor"),
        Dataset("groups/names", "(G,)", "string", "layer-group names"),
        Dataset("groups/distance", "(G,)", "float64", "`‖a − b‖` over the group's parameters"),
        Dataset("groups/relative_distance", "(G,)", "float64", "`‖a − b‖ / ‖b‖` over the group"),
        Dataset("groups/cosine", "(G,)", "float64", "cosine similarity over the group"),
    ),
    summary=(
        Attribute("distance", "`‖a − b‖` over all parameters"),
        Attribute("relative_distance", "`‖a − b‖ / ‖b‖` over all parameters"),
        Attribute("cosine", "cosine similarity over all parameters"),
    ),
))

register_kind(ResultKind(
    "fit",
    writers=("probes.fit.fit_measures",),
    intro="""\
Written by `landscape fit --model M [--init RUN | --pretrained] --data SPEC --out F.h5`
(`probes.fit.fit_measures`; plot in `F.png`): how well a model's initial weights fit a
target before any fine-tuning. G = layer groups except the head (the head's output is the
new classifier's untrained logits), input to output, so index g is group g of
`landscape groups`; B = BatchNorm layers; C = classes; N = training examples measured. A
group's features are what it hands to the next group, averaged over positions or tokens, of
the training split (after `--train-per-class`; the validation split is not read). The
accuracies are cross-validated: the examples are dealt to K stratified folds (each class's
examples in a seeded order, round-robin; K = `--folds`, at most the smallest class's size)
and every example is classified by a kNN vote and a linear probe trained on the other
folds. Every measure has a standard error: an accuracy's is the standard deviation of the
per-example correctness / √N (the paired error of two groups' difference is computed the
same way from `examples/*_correct`); LogME's and the BN distance's are the delete-one-fold
jackknife's, √((K−1)/K · Σ_k (θ₋ₖ − mean θ₋)²) over the K values computed without fold k
(for the BN distance, without every K-th example in the order they were fed). The BN distance of a
layer is the mean over channels of the symmetric KL divergence KL(p‖q) + KL(q‖p) between p, the
Gaussian of the layer's input on the training split (model in eval mode; unbiased
variance), and q, the Gaussian of its running statistics, each variance plus the layer's
`eps`.""",
    attributes=(
        Attribute("model", "timm architecture"),
        Attribute("init",
                  "where the weights came from: a file or run directory, `timm pre-trained`, or "
                  "`random init, seed S`"),
        Attribute("data", "target dataset spec"),
        Attribute("train_per_class", "training images kept per class (empty: all)"),
        Attribute("val_fraction",
                  "share of each class held out for validation when the dataset has no "
                  "validation split"),
        Attribute("split_seed", "seed of that carve-out and of the per-class subsample"),
        Attribute("input",
                  "the input spec the images were prepared with (JSON: size, crop, "
                  "interpolation, mean/std), as fine-tuning would evaluate them"),
        Attribute("k", "neighbours of the kNN vote (capped at the training examples)"),
        Attribute("pool", "`mean`: features averaged over positions or tokens"),
        Attribute("linear_l2",
                  "L2 strength of the linear probe (`l2/2 ‖W‖²` added to the mean cross-entropy)"),
        Attribute("bn_measure", "how a BatchNorm layer's distance is measured"),
        Attribute("protocol", "how the measures and their standard errors are computed (text)"),
        Attribute("folds", "K, the cross-validation folds used"),
        Attribute("seed", "seed of a random init and of the `--examples` subset"),
        Attribute("device", "device description (JSON)"),
    ),
    datasets=(
        Dataset("groups/names", "(G,)", "string", "layer-group names"),
        Dataset("groups/features", "(G,)", "int64",
                "feature dimension of each group's representation"),
        Dataset("groups/knn_acc", "(G,)", "float64",
                "cross-validated accuracy of a k-nearest-neighbour vote (cosine similarity) over "
                "the other folds' features"),
        Dataset("groups/knn_se", "(G,)", "float64", "its standard error"),
        Dataset("groups/linear_acc", "(G,)", "float64",
                "cross-validated accuracy of a multinomial logistic regression on the other "
                "folds' standardised features (L-BFGS)"),
        Dataset("groups/linear_se", "(G,)", "float64", "its standard error"),
        Dataset("groups/logme", "(G,)", "float64",
                "LogME of the group's features (all N examples)"),
        Dataset("groups/logme_se", "(G,)", "float64", "its jackknife standard error"),
        Dataset("groups/bn_distance", "(G,)", "float64",
                "mean of `bn/distance` over the group's BatchNorm layers; NaN for a group "
                "without any"),
        Dataset("groups/bn_se", "(G,)", "float64",
                "its jackknife standard error; NaN for a group without BatchNorm"),
        Dataset("examples/label", "(N,)", "int64",
                "each measured example's class, in the order measured"),
        Dataset("examples/fold", "(N,)", "int64", "its cross-validation fold"),
        Dataset("examples/knn_correct", "(G, N)", "bool",
                "whether the kNN vote of the other folds classified it correctly, per group"),
        Dataset("examples/linear_correct", "(G, N)", "bool", "the same for the linear probe"),
        Dataset("bn/layers", "(B,)", "string",
                "BatchNorm module names, in model order (empty without BatchNorm)"),
        Dataset("bn/group", "(B,)", "int64",
                "index of each layer's group (the head is G; -1 for a layer without parameters)"),
        Dataset("bn/distance", "(B,)", "float64",
                "each layer's distance (mean over channels of the symmetric KL)"),
        Dataset("logme/evidence", "(C,)", "float64",
                "maximised log evidence / N of each class's one-vs-rest target on the "
                "penultimate features"),
        Dataset("logme/alpha", "(C,)", "float64", "the prior precision reaching it"),
        Dataset("logme/beta", "(C,)", "float64", "the noise precision reaching it"),
    ),
    summary=(
        Attribute("logme",
                  "LogME (You et al. 2021) of the penultimate features: the mean of "
                  "`logme/evidence`"),
        Attribute("logme_se", "its jackknife standard error"),
        Attribute("pre_logits_features",
                  "dimension of the penultimate features (the classifier's input)"),
        Attribute("classes", "classes of the target"),
        Attribute("train_examples", "training examples measured (N)"),
        Attribute("train_per_class",
                  "images of the fewest class in the whole training split (what the advisor "
                  "calls the images per class)"),
        Attribute("seconds", "wall time of the whole measurement"),
    ),
))
# fmt: on
