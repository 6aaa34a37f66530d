"""Real, well-known papers for bench/learning.py: titles with one- or two-sentence abstracts in our own words.

None is in the seed set (its papers are invented). TRAIN papers are the ones rounds get votes on;
FRESH papers are only ever used to measure the like-rate after a round, so no round sees them.
"""

from __future__ import annotations

TRAIN = [
    ("Deep Residual Learning for Image Recognition",
     "We add identity shortcut connections so that very deep networks learn residual functions. A 152-layer network "
     "wins ImageNet 2015 classification with 3.57% top-5 error."),
    ("Adam: A Method for Stochastic Optimization",
     "We propose an optimizer with per-parameter step sizes from estimates of the first and second moments of the "
     "gradients. It works well on logistic regression, MLPs and CNNs with little tuning."),
    ("Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift",
     "We normalize each layer's inputs over the mini-batch. An Inception network reaches the same accuracy with 14 "
     "times fewer training steps."),
    ("Dropout: A Simple Way to Prevent Neural Networks from Overfitting",
     "Randomly dropping units during training prevents co-adaptation. It improves results on vision, speech and "
     "document classification benchmarks."),
    ("Generative Adversarial Nets",
     "A generator and a discriminator are trained against each other in a minimax game. Samples on MNIST and "
     "CIFAR-10 are competitive with other generative models."),
    ("Auto-Encoding Variational Bayes",
     "We reparameterize the variational lower bound so it can be optimized with stochastic gradients. The "
     "resulting variational autoencoder learns generative models of MNIST and Frey faces."),
    ("Neural Machine Translation by Jointly Learning to Align and Translate",
     "An encoder-decoder learns to attend to source words while translating. It matches phrase-based systems on "
     "English-to-French and handles long sentences better."),
    ("Sequence to Sequence Learning with Neural Networks",
     "Two deep LSTMs map an input sentence to a vector and back to a translation. On WMT'14 English-to-French it "
     "reaches 34.8 BLEU; reversing the source order helps."),
    ("Efficient Estimation of Word Representations in Vector Space",
     "Two simple log-linear models, CBOW and skip-gram, learn word vectors from billions of words in hours. The "
     "vectors solve syntactic and semantic analogy questions."),
    ("GloVe: Global Vectors for Word Representation",
     "We fit word vectors to the logarithm of global co-occurrence counts. They reach 75% on the word analogy task "
     "and beat word2vec on similarity and NER."),
    ("Playing Atari with Deep Reinforcement Learning",
     "A convolutional network trained with Q-learning from raw pixels learns control policies. It beats previous "
     "approaches on six of seven Atari games and a human expert on three."),
    ("Mastering the Game of Go with Deep Neural Networks and Tree Search",
     "Policy and value networks trained on expert games and self-play guide Monte Carlo tree search. The program "
     "defeated the European Go champion five games to zero."),
    ("Proximal Policy Optimization Algorithms",
     "We optimize a clipped surrogate objective with several epochs of minibatch updates per batch of experience. "
     "It outperforms other online policy gradient methods on MuJoCo and Atari."),
    ("Semi-Supervised Classification with Graph Convolutional Networks",
     "A first-order approximation of spectral graph convolutions gives a simple layer-wise propagation rule. It "
     "beats prior methods on Cora, Citeseer and PubMed node classification."),
    ("U-Net: Convolutional Networks for Biomedical Image Segmentation",
     "A contracting path and a symmetric expanding path with skip connections segment images from very few "
     "annotated examples. It won the ISBI 2015 cell tracking challenge."),
    ("You Only Look Once: Unified, Real-Time Object Detection",
     "We frame detection as one regression from image pixels to boxes and class probabilities. The network runs at "
     "45 frames per second with twice the mAP of other real-time detectors."),
    ("Faster R-CNN: Towards Real-Time Object Detection with Region Proposal Networks",
     "A region proposal network shares convolutional features with the detector, making proposals nearly free. "
     "It reaches state-of-the-art accuracy on PASCAL VOC at 5 frames per second."),
    ("Distilling the Knowledge in a Neural Network",
     "A small model trained on the softened outputs of a large ensemble keeps most of its accuracy. We show gains "
     "on MNIST and a commercial acoustic model."),
    ("XGBoost: A Scalable Tree Boosting System",
     "A sparsity-aware, cache-aware gradient boosting system scales to billions of examples. It is used by many "
     "winning solutions of machine learning competitions."),
    ("Random Forests",
     "Ensembles of decision trees grown on bootstrap samples with random feature selection generalize well. Their "
     "error converges as the number of trees grows."),
    ("MapReduce: Simplified Data Processing on Large Clusters",
     "Users write a map and a reduce function and the runtime parallelizes them over thousands of machines, "
     "handling failures. Google runs thousands of such jobs every day."),
    ("The PageRank Citation Ranking: Bringing Order to the Web",
     "We rank web pages by the stationary distribution of a random surfer over the link graph. The ranking helps "
     "search on a crawl of 75 million pages."),
    ("Human-level Control through Deep Reinforcement Learning",
     "A deep Q-network with experience replay and a target network learns 49 Atari games from pixels and score. It "
     "reaches human level on more than half of them."),
    ("Language Models are Few-Shot Learners",
     "We train a 175-billion-parameter language model and evaluate it with prompts and a few examples, without "
     "fine-tuning. It is strong on many NLP benchmarks and writes news articles humans struggle to identify."),
    ("Denoising Diffusion Probabilistic Models",
     "A model learns to reverse a gradual noising process. On CIFAR-10 it reaches an FID of 3.17 and an "
     "Inception score of 9.46."),
    ("Learning Transferable Visual Models From Natural Language Supervision",
     "An image encoder and a text encoder are trained contrastively on 400 million image-text pairs. The model "
     "transfers zero-shot to over 30 vision datasets."),
    ("Highly Accurate Protein Structure Prediction with AlphaFold",
     "A network that reasons over multiple sequence alignments and pairwise features predicts protein structures. "
     "In CASP14 its accuracy was competitive with experimental structures in most cases."),
    ("Neural Ordinary Differential Equations",
     "We parameterize the derivative of the hidden state with a neural network and backpropagate through an ODE "
     "solver with the adjoint method. We show continuous-depth residual networks and normalizing flows."),
    ("Scaling Laws for Neural Language Models",
     "Language model loss follows power laws in model size, data and compute over seven orders of magnitude. "
     "Larger models are more sample-efficient, so compute-optimal training stops well before convergence."),
    ("Spectral Normalization for Generative Adversarial Networks",
     "We normalize each layer's weight by its largest singular value to stabilize the discriminator. It improves "
     "image quality on CIFAR-10, STL-10 and ImageNet."),
    ("A Simple Framework for Contrastive Learning of Visual Representations",
     "Strong augmentation, a projection head and large batches make contrastive self-supervised learning work. A "
     "linear classifier on its features reaches 76.5% top-1 on ImageNet."),
    ("Deep Learning Scaling Is Predictable, Empirically",
     "Across translation, language modeling, image classification and speech, generalization error falls as a "
     "power law of training set size. The exponents differ by task but not by architecture."),
]

FRESH = [
    ("Attention Is All You Need",
     "We propose the Transformer, a network based solely on attention. It reaches 28.4 BLEU on WMT 2014 "
     "English-to-German and trains in a fraction of the time of recurrent models."),
    ("BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
     "We pre-train a bidirectional Transformer with masked language modeling and next sentence prediction. "
     "Fine-tuned, it sets new results on eleven NLP tasks including GLUE and SQuAD."),
    ("ImageNet Classification with Deep Convolutional Neural Networks",
     "A large convolutional network with ReLUs, dropout and GPU training classifies 1.2 million images. It "
     "reaches 15.3% top-5 error in ILSVRC-2012, far ahead of the runner-up."),
    ("Long Short-Term Memory",
     "A recurrent architecture with gated memory cells keeps error flowing over long time lags. It learns tasks "
     "with lags of more than 1000 steps that other recurrent networks cannot."),
    ("Very Deep Convolutional Networks for Large-Scale Image Recognition",
     "Stacks of small 3x3 convolutions let networks go 16 to 19 layers deep. They took first and second places "
     "in ImageNet 2014 localization and classification."),
    ("Going Deeper with Convolutions",
     "The Inception module combines convolutions of several sizes within a fixed compute budget. A 22-layer "
     "network won ImageNet 2014 classification and detection."),
    ("Asynchronous Methods for Deep Reinforcement Learning",
     "Parallel actor-learners update a shared network asynchronously instead of using experience replay. The "
     "actor-critic variant beats the state of the art on Atari while training on a single CPU."),
    ("Graph Attention Networks",
     "Masked self-attention over a node's neighbors assigns different weights to different neighbors. It matches "
     "or beats the state of the art on Cora, Citeseer, PubMed and a protein interaction dataset."),
    ("Mask R-CNN",
     "We add a branch that predicts an object mask to Faster R-CNN. It outperforms all single-model entries on "
     "COCO instance segmentation, detection and keypoints."),
    ("Deep Speech 2: End-to-End Speech Recognition in English and Mandarin",
     "One end-to-end network trained on thousands of hours recognizes English and Mandarin speech. On several "
     "benchmarks it is competitive with human transcribers."),
    ("WaveNet: A Generative Model for Raw Audio",
     "A deep autoregressive network of dilated causal convolutions generates raw audio waveforms. Listeners rate "
     "its text-to-speech as more natural than the best parametric and concatenative systems."),
    ("Mastering Chess and Shogi by Self-Play with a General Reinforcement Learning Algorithm",
     "One algorithm learns chess, shogi and Go from self-play with no human knowledge beyond the rules. Within 24 "
     "hours it beats a world-champion program in each game."),
    ("Layer Normalization",
     "We normalize over the summed inputs of all units in a layer for each training case. Unlike batch "
     "normalization it works for recurrent networks and small batches."),
    ("An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
     "A plain Transformer applied to sequences of image patches classifies images. Pre-trained on large datasets "
     "it matches or beats convolutional networks with less compute."),
    ("Training Language Models to Follow Instructions with Human Feedback",
     "We fine-tune GPT-3 on demonstrations and then with reinforcement learning from human preference rankings. "
     "Outputs of a 1.3B model are preferred to those of the 175B GPT-3."),
    ("LoRA: Low-Rank Adaptation of Large Language Models",
     "We freeze the pre-trained weights and train low-rank update matrices in each layer. It matches full "
     "fine-tuning of GPT-3 with 10,000 times fewer trainable parameters."),
    ("Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
     "We fit a language model to human preferences with a simple classification loss, with no reward model and no "
     "reinforcement learning. It matches or beats PPO-based RLHF on sentiment, summarization and dialogue."),
    ("Dynamic Routing Between Capsules",
     "Groups of neurons called capsules output vectors, and routing by agreement sends them to higher-level "
     "capsules. It reaches state-of-the-art on MNIST and recognizes overlapping digits."),
    ("Bitcoin: A Peer-to-Peer Electronic Cash System",
     "A peer-to-peer network timestamps transactions in a chain of hash-based proof of work. Double spending is "
     "prevented as long as honest nodes control most of the CPU power."),
    ("Bigtable: A Distributed Storage System for Structured Data",
     "A sparse, distributed, persistent sorted map scales to petabytes across thousands of servers. Over sixty "
     "Google products use it."),
    ("Spanner: Google's Globally-Distributed Database",
     "A database that shards data across datacenters worldwide and supports externally consistent transactions "
     "with the TrueTime API, which exposes clock uncertainty."),
    ("Deep Learning for Detecting Diabetic Retinopathy in Retinal Fundus Photographs",
     "A network trained on 128,000 images detects referable diabetic retinopathy. On two validation sets it "
     "reaches an AUC of 0.99 with high sensitivity and specificity."),
    ("Estimating the Reproducibility of Psychological Science",
     "We replicated 100 studies from three psychology journals. Only 36% of the replications had significant "
     "results, and effect sizes were half of the originals."),
    ("Why Most Published Research Findings Are False",
     "A model of bias, power and pre-study odds shows that most claimed findings are more likely false than true. "
     "Small studies, small effects and flexible designs make it worse."),
]
